"""``crmsync demo``: HubSpot, Zoho CRM and Mailchimp emulators with sample contacts, a sync, and a report.

The emulators run in this process on 127.0.0.1 with a SQLite state file and a JSONL export in the demo's
folder, so the demo needs no account and no network. The people are made up (``@example.com``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from connector.app import open_engine, open_store
from connector.config import load_config
from connector.report import ExitCode, RunReport
from connector.sandbox import running_emulators

RULES = """
[[rules]]
when = "lifecycle == 'customer' and company in ['Initech', 'Globex']"
add_tags = ["key-account"]

[[rules]]
when = "tags contains 'webinar'"
add_tags = ["engaged"]
"""


def _seed(emulators: dict[str, Any]) -> dict[str, Any]:
    """Overlapping audiences: CRM customers, newsletter readers, Zoho leads; two opt-outs; one conflict."""
    hubspot, zoho, mailchimp = emulators["hubspot"], emulators["zoho"], emulators["mailchimp"]
    customer_ids = hubspot.seed(12, prefix="customer")
    for contact_id in customer_ids:  # the demo's opt-outs are the Mailchimp ones below
        hubspot.edit(contact_id, hs_email_optout="false")
    customers = [hubspot.get(i)["properties"] for i in customer_ids]
    for i, record_id in enumerate(zoho.seed(4, prefix="customer")):  # the same people, kept in Zoho too
        props = customers[i]
        zoho.edit(record_id, First_Name=props.get("firstname"), Last_Name=props.get("lastname"),
                  Account_Name={"name": props.get("company")}, Phone=props.get("phone"),
                  Mailing_City=props.get("city"), Email_Opt_Out=False)
    conflicted = customers[3]
    zoho.edit(zoho.find(conflicted["email"])["id"], Account_Name={"name": "Umbrella Corp"})
    zoho.seed(5, prefix="lead")
    for props in customers[:8]:
        mailchimp.subscribe(props["email"], FNAME=props.get("firstname") or "", LNAME=props.get("lastname") or "")
    mailchimp.seed(4, prefix="reader")
    left = [customers[1]["email"], customers[5]["email"]]
    for email in left:
        mailchimp.unsubscribe(email)
    return {"left": left, "conflicted": conflicted["email"]}


def _write_config(folder: Path, emulators: dict[str, Any]) -> Path:
    lines = ['# Written by `crmsync demo`; the emulators it names stop when the demo ends.', "[state]",
             'url = "sqlite:///state.db"', "", "[sync]", 'conflict_policy = "manual"',
             'priority = ["hubspot", "zoho", "mailchimp", "export"]', ""]
    for kind, emulator in emulators.items():
        lines.append(f"[providers.{kind}]")
        lines.extend(f"{key} = {json.dumps(value)}" for key, value in emulator.sandbox_options().items())
        lines.append("")
    lines += ["[providers.export]", 'type = "jsonl"', 'path = "export.jsonl"', RULES]
    config = folder / "crmsync.toml"
    config.write_text("\n".join(lines))
    return config


def run_demo(folder: Path, *, as_json: bool, console: Console, keep_running: bool = False) -> ExitCode:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with running_emulators(seed=0, kinds=("hubspot", "zoho", "mailchimp")) as emulators:
        story = _seed(emulators)
        config = load_config(_write_config(folder, emulators))
        with open_engine(config) as engine:
            first = engine.sync()
        with open_engine(config) as engine:
            second = engine.sync()
        store = open_store(config)
        try:
            conflicts = store.open_conflicts()
        finally:
            store.close()
        hubspot_optouts = [e for e in story["left"]
                           if str(emulators["hubspot"].find(e)["properties"].get("hs_email_optout")).lower() == "true"]
        if as_json:
            console.print_json(json.dumps({"first_sync": first.to_json(), "second_sync": second.to_json(),
                                           "open_conflicts": conflicts, "unsubscribes_spread_to_hubspot":
                                           hubspot_optouts}, default=str))
        else:
            _print_story(folder, first, second, conflicts=conflicts, story=story, hubspot_optouts=hubspot_optouts,
                         console=console)
        if keep_running:
            console.print(f"Emulators running; try: crmsync sync --config {folder / 'crmsync.toml'}  (Ctrl-C to stop)")
            _wait_for_termination()
    return ExitCode.OK if first.exit_code == ExitCode.OK else first.exit_code


def _wait_for_termination() -> None:
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def _print_story(folder: Path, first: RunReport, second: RunReport, *, conflicts: list[dict[str, Any]],
                 story: dict[str, Any], hubspot_optouts: list[str], console: Console) -> None:
    console.rule("crmsync demo")
    console.print("Three providers on local emulators: HubSpot (12 customers), Zoho CRM (4 of the same customers "
                  "and 5 leads), Mailchimp (8 customers and 4 readers; 2 customers unsubscribed), and a JSONL "
                  f"export in [bold]{folder}/[/]. One hub, one sync.\n")
    table = Table("provider", "read", "created there", "updated there", "unsubscribed there", "failed",
                  title="First sync")
    for name, f in first.providers.items():
        table.add_row(name, str(f.pulled), str(f.created), str(f.updated), str(f.unsubscribed), str(f.failed))
    console.print(table)
    console.print(f"• Who was created where: every person is now in every provider ({_total(first)} creates); the "
                  "same address in HubSpot, Zoho and Mailchimp is one person, never a duplicate.")
    console.print(f"• Unsubscribes spread: {', '.join(story['left'])} left the Mailchimp list; HubSpot now has "
                  f"{len(hubspot_optouts)} of them opted out, Zoho and the export too. No later sync, CRM edit "
                  "or import resubscribes them.")
    tagged = _tag_counts(folder / "export.jsonl")
    console.print(f"• Segments: the rules tagged {tagged.get('key-account', 0)} customers of Initech and Globex "
                  f"'key-account' and {tagged.get('engaged', 0)} webinar-goers 'engaged', in every provider that "
                  "has tags.")
    for conflict in conflicts:
        values = " vs ".join(f"{c['source']}: {c['value']!r}" for c in conflict["candidates"])
        console.print(f"• Conflict #{conflict['id']} waits for you (conflict_policy = manual): {conflict['email']} "
                      f"{conflict['field']} ({values}). Nothing was overwritten.")
    writes = _total(second, updates=True)
    console.print(f"• A second sync right after: {writes} writes (no echo).\n")
    cfg = folder / "crmsync.toml"
    crmsync = _command_name()
    console.print("Next, try:")
    for command in (f"{crmsync} conflicts --config {cfg}",
                    f"{crmsync} resolve {conflicts[0]['id'] if conflicts else 1} --use hubspot --config {cfg}",
                    f"{crmsync} status --config {cfg}",
                    f"{crmsync} demo --keep-running   # leave the emulators up; sync and unsubscribe yourself",
                    f"{crmsync} sandbox --seed 20     # the emulators alone, with a ready config"):
        console.print(f"  {command}", highlight=False)


def _command_name() -> str:
    """``crmsync`` when that is on PATH, else the path it was started by (``.venv/bin/crmsync``)."""
    started = Path(sys.argv[0])
    on_path = shutil.which("crmsync")
    if started.name != "crmsync" or (on_path and Path(on_path).resolve() == started.resolve()):
        return "crmsync"
    return os.path.relpath(started)


def _tag_counts(export: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in export.read_text(encoding="utf-8").splitlines():
        for tag in json.loads(line).get("tags") or ():
            counts[tag] = counts.get(tag, 0) + 1
    return counts


def _total(report: RunReport, *, updates: bool = False) -> int:
    return sum(f.created + (f.updated if updates else 0) for f in report.providers.values())
