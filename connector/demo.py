"""``crmsync demo``: two sample sources, a sync, and a report of what crmsync did and why.

The demo runs on file providers (a CRM export as CSV, an email platform as JSONL) with a SQLite
state file in its own folder, so it needs no account and no network.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.app import open_engine, open_store
from connector.config import load_config
from connector.report import ExitCode, RunReport

CONFIG = """\
# Written by `crmsync demo`. Every key is documented in config.example.toml.
[state]
url = "sqlite:///state.db"

[sync]
conflict_policy = "manual"         # a field changed on both sides waits for you: crmsync conflicts
priority = ["crm", "newsletter"]

[providers.crm]
type = "csv"
path = "crm.csv"

[providers.newsletter]
type = "jsonl"
path = "newsletter.jsonl"

[[rules]]
when = "lifetime_value >= 10000"
add_tags = ["vip"]
set_lifecycle = "vip"

[[rules]]
when = "industry == 'Software'"
add_tags = ["saas"]
"""

_FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Margaret", "Niklaus",
          "Radia", "Tim", "Katherine", "Linus", "Guido", "Anita", "John", "Sophie", "Hedy", "Dennis"]
_LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Hamilton", "Wirth",
         "Perlman", "Berners-Lee", "Johnson", "Torvalds", "van Rossum", "Borg", "Backus", "Wilson", "Lamarr", "Ritchie"]
_INDUSTRY = ["Software", "Retail", "Finance", "Health"]
_COUNTRY = ["GB", "US", "DE", "FR"]


def _crm_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(20):
        rows.append({
            "email": f"{_FIRST[i].lower()}.{_LAST[i].split()[-1].lower()}@example.com",
            "first_name": _FIRST[i], "last_name": _LAST[i], "company": f"{_LAST[i]} Ltd",
            "phone": f"+4420794601{i:02d}", "industry": _INDUSTRY[i % 4], "country": _COUNTRY[i % 4],
            "lifecycle": "customer" if i % 3 == 0 else "prospect", "tags": "trial" if i % 5 == 0 else "",
            "consent": "subscribed", "custom.lifetime_value": str(2500 * i),
        })
    rows[3]["email"] = "  Edsger.DIJKSTRA@Example.com "  # mixed case and spaces: the same person as in the newsletter
    rows[7]["email"] = "not-an-address"  # an invalid row: reported, the others go on
    return rows


def _newsletter_rows() -> list[dict[str, Any]]:
    rows = []
    for i in range(10, 26):
        first, last = (_FIRST[i], _LAST[i]) if i < 20 else (f"Reader{i}", "Example")
        rows.append({"email": f"{first.lower()}.{last.split()[-1].lower()}@example.com", "first_name": first,
                     "last_name": last, "tags": ["newsletter"], "consent": "subscribed"})
    rows[0]["consent"] = "unsubscribed"  # Radia left the newsletter: the CRM must hear of it
    rows[12]["consent"] = "unsubscribed"
    rows[4]["company"] = "Python Software Foundation"  # the CRM says "van Rossum Ltd": a conflict that waits
    rows.append({"email": "edsger.dijkstra@example.com", "first_name": "Edsger", "tags": ["newsletter"],
                 "consent": "subscribed"})
    return rows


def write_demo_files(folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / "crmsync.toml").write_text(CONFIG)
    crm = _crm_rows()
    columns = list(crm[0])
    with (folder / "crm.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(crm)
    with (folder / "newsletter.jsonl").open("w", encoding="utf-8") as handle:
        for row in _newsletter_rows():
            handle.write(json.dumps(row) + "\n")
    return folder / "crmsync.toml"


def run_demo(folder: Path, *, as_json: bool, console: Console) -> ExitCode:
    config = load_config(write_demo_files(folder))
    with open_engine(config) as engine:
        first = engine.sync()
    with open_engine(config) as engine:
        second = engine.sync()
    store = open_store(config)
    try:
        conflicts = store.open_conflicts()
        state = store.status()
    finally:
        store.close()
    if as_json:
        console.print_json(json.dumps({"first_sync": first.to_json(), "second_sync": second.to_json(),
                                       "open_conflicts": conflicts, "status": state}, default=str))
        return ExitCode.OK
    _print_story(folder, first, second, conflicts, console)
    return ExitCode.OK


def _print_story(folder: Path, first: RunReport, second: RunReport, conflicts: list[dict[str, Any]],
                 console: Console) -> None:
    console.rule("crmsync demo")
    console.print(f"Two sources in [bold]{folder}/[/]: crm.csv (a CRM export, 20 rows) and newsletter.jsonl "
                  "(an email platform, 17 members). One hub, one sync.\n")
    table = Table("provider", "read", "created there", "updated there", "unsubscribed there", "failed",
                  title="First sync")
    for name, f in first.providers.items():
        table.add_row(name, str(f.pulled), str(f.created), str(f.updated), str(f.unsubscribed), str(f.failed))
    console.print(table)
    console.print("• Unsubscribes spread: people who left the newsletter are now unsubscribed in crm.csv too, "
                  "and no later sync or import will resubscribe them.")
    console.print("• Identity: '  Edsger.DIJKSTRA@Example.com ' in the CRM and 'edsger.dijkstra@example.com' in the "
                  "newsletter are one person.")
    console.print("• Segments: the rules tagged big accounts 'vip' and software companies 'saas'.")
    for error in first.errors:
        console.print(f"• Invalid input reported, nothing else lost: {error.get('where')}: {error['message']}")
    for conflict in conflicts:
        values = " vs ".join(f"{c['source']}: {c['value']!r}" for c in conflict["candidates"])
        console.print(f"• Conflict #{conflict['id']} waits for you: {conflict['email']} {conflict['field']} ({values})")
    writes = sum(f.created + f.updated for f in second.providers.values())
    console.print(f"• A second sync right after: {writes} writes (no echo).\n")
    cfg = folder / "crmsync.toml"
    console.print("Next, try:")
    for command in (f"crmsync conflicts --config {cfg}",
                    f"crmsync resolve {conflicts[0]['id'] if conflicts else 1} --use crm --config {cfg}",
                    f"crmsync sync --config {cfg} --dry-run",
                    f"crmsync unsubscribe ada.lovelace@example.com --config {cfg}",
                    f"crmsync status --config {cfg}"):
        console.print(f"  {command}", highlight=False)
