"""One command, one table: crmsync measured against its limits, side by side in one run (issue 7).

    python benchmarks/run.py [--contacts 100000] [--small 10000] [--rate-bound 20000] [--skip-webhooks]

Rows:
  migrate N HubSpot -> Mailchimp   wall, contacts/s, API calls vs the minimum (list pages + batch calls), peak RSS
  floor                             the same copy by a script that makes only the minimum calls, no state, no mapping
  incremental (1% changed)          a sync cycle (HubSpot and Mailchimp, as the full run) after 1% of the contacts
                                    changed in HubSpot, vs the full migrate: a `crmsync sync` process, and one poll
                                    cycle of `crmsync daemon` as it logs it (after another 1% changed)
  peak RSS at the small size        the same migrate at --small contacts, to see memory stay flat
  rate-bound HubSpot -> JSONL       HubSpot's real limits (100 / 10 s): wall vs the issue's floor, calls / allowed
                                    rate, and vs the least time the calls alone take in that rolling window
                                    (window_floor: the first 100 at once), 429s drawn
  webhook latency p50 / p95         from benchmarks/daemon_webhooks.py latency (a daemon through the emulators)
crmsync runs as a separate process (as a user runs it); the emulators run in this one and count the calls.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.hubspot.emulator import HubSpotEmulator  # noqa: E402
from adapters.mailchimp.emulator import MailchimpEmulator  # noqa: E402

FAST = "1000000/10s"
LONG_AGO = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)  # seeded lists were edited long before the run


def crmsync(folder: Path, *args: str) -> tuple[float, float, dict[str, Any]]:
    """Run the CLI; (wall seconds, peak RSS MB of that process, its --json document)."""
    out = folder / "out.json"
    with out.open("w") as handle:
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "connector", *args, "--json", "--config",
                                 str(folder / "crmsync.toml")], stdout=handle, stderr=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
    document = json.loads(out.read_text() or "{}")
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"crmsync {' '.join(args)} failed: {document}")
    return wall, usage.ru_maxrss / 1024, document


def write_config(folder: Path, hubspot: HubSpotEmulator, mailchimp: MailchimpEmulator | None, *,
                 hubspot_rate: str | None) -> None:
    lines = [f'[state]\nurl = "sqlite:///{folder / "state.db"}"\n', "[providers.hubspot]"]
    options = hubspot.sandbox_options()
    if hubspot_rate:  # the emulator's limits are lifted too: this run measures crmsync, not HubSpot's pacing
        options["rate_limit"] = hubspot_rate
        options["search_rate_limit"] = hubspot_rate
    else:
        options.pop("rate_limit", None)
    lines += [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    if mailchimp is not None:
        lines += ["", "[providers.mailchimp]"] + [f"{k} = {json.dumps(v)}" for k, v in mailchimp.sandbox_options().items()]
    else:  # the rate-bound row's target; the migrate row's cycles hold the same two providers as its full run
        lines += ["", "[providers.export]", 'type = "jsonl"', f'path = "{folder / "export.jsonl"}"']
    (folder / "crmsync.toml").write_text("\n".join(lines) + "\n")


def floor_copy(hubspot: HubSpotEmulator, mailchimp: MailchimpEmulator) -> float:
    """The minimum calls, nothing else: list pages of 100 from HubSpot, batches of 500 into Mailchimp."""
    options, mc = hubspot.sandbox_options(), mailchimp.sandbox_options()
    session = requests.Session()
    started = time.perf_counter()
    after, batch = None, []

    def flush() -> None:
        response = session.post(f"{mc['base_url']}/lists/{mc['list_id']}", auth=("any", mc["api_key"]),
                                json={"members": batch, "update_existing": True}, timeout=60)
        response.raise_for_status()
        batch.clear()

    while True:
        params = {"limit": 100, "properties": "email,firstname,lastname"}
        if after:
            params["after"] = after
        page = session.get(f"{options['base_url']}/crm/v3/objects/contacts", params=params, timeout=60,
                           headers={"Authorization": f"Bearer {options['access_token']}"}).json()
        for contact in page["results"]:
            props = contact["properties"]
            batch.append({"email_address": props["email"], "status": "subscribed",
                          "merge_fields": {"FNAME": props.get("firstname") or "", "LNAME": props.get("lastname") or ""}})
            if len(batch) == 500:
                flush()
        after = page.get("paging", {}).get("next", {}).get("after")
        if not after:
            break
    if batch:
        flush()
    return time.perf_counter() - started


def migrate_row(n: int, base: Path) -> dict[str, Any]:
    folder = base / f"migrate-{n}"
    folder.mkdir(parents=True)
    offset = [dt.timedelta(0)]  # Mailchimp's clock, moved like HubSpot's: cycles run minutes apart

    def mailchimp_clock() -> dt.datetime:
        return dt.datetime.now(dt.UTC) + offset[0]

    def interval() -> None:  # the daemon's poll interval passes
        offset[0] += dt.timedelta(minutes=10)
        hubspot.advance(600)

    with HubSpotEmulator(burst=10**6, search_per_s=10**6) as hubspot, MailchimpEmulator(clock=mailchimp_clock) as mailchimp:
        hubspot.seed(n, prefix="person", modified_at=LONG_AGO)
        write_config(folder, hubspot, mailchimp, hubspot_rate=FAST)
        hubspot.reset_counters()
        wall, rss, report = crmsync(folder, "migrate", "--from", "hubspot", "--to", "mailchimp")
        calls = hubspot.reads() + mailchimp.call_count()
        minimum = math.ceil(n / 100) + math.ceil(n / 500)
        row = {"n": n, "wall": wall, "rate": n / wall, "calls": calls, "minimum": minimum, "rss": rss,
               "created": report["providers"]["mailchimp"]["created"]}
        # settle the cursors once, then change 1% in HubSpot and time one incremental cycle
        interval()
        crmsync(folder, "sync")
        interval()
        changed = max(1, n // 100)
        for contact_id in [c.id for c in hubspot.portal.live()][:changed]:
            hubspot.edit(contact_id, firstname="Changed")
        interval()
        row["incremental"], _, inc = crmsync(folder, "sync")
        row["incremental_updates"] = inc["providers"]["mailchimp"]["updated"]
        # the same in the daemon, as ops run it: its own figure for one poll cycle, with no process start
        row["daemon_cycle"], row["daemon_updates"] = daemon_cycle(folder, hubspot, changed, interval)
    with HubSpotEmulator(burst=10**6, search_per_s=10**6) as hubspot, MailchimpEmulator() as mailchimp:
        hubspot.seed(n, prefix="person")
        row["floor"] = floor_copy(hubspot, mailchimp)
    return row


def daemon_cycle(folder: Path, hubspot: HubSpotEmulator, changed: int, interval: Callable[[], None]
                 ) -> tuple[float, int]:
    """One poll cycle of ``crmsync daemon`` after ``changed`` more contacts changed in HubSpot: the cycle's
    seconds as the daemon logs them (from the start of Engine.sync to its end), and Mailchimp's updates."""
    config = folder / "crmsync.toml"
    config.write_text(config.read_text() + f'\n[sync]\ninterval = "{DAEMON_INTERVAL_S}s"\n')
    interval()
    log_path = folder / "daemon.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "connector", "daemon", "--log-format", "json",
                                 "--listen", "127.0.0.1:0", "--config", str(config)],
                                stdout=subprocess.DEVNULL, stderr=log, cwd=ROOT)
    try:
        # cycles minutes apart, as in the CLI rows: Mailchimp's and HubSpot's clocks move between them
        _wait_for_polls(log_path, 1, proc)  # the echo of the CLI cycle's writes
        interval()
        polls = _wait_for_polls(log_path, 2, proc)  # an idle cycle
        interval()
        live = [c.id for c in hubspot.portal.live()]
        for contact_id in live[changed : 2 * changed]:  # others than the CLI cycle's, just after a cycle ended
            hubspot.edit(contact_id, firstname="Changed again")
        interval()
        cycle = _last_poll(log_path, polls + 1, proc)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    return float(cycle["seconds"]), int(cycle.get("mailchimp_updated", 0))


DAEMON_INTERVAL_S = 4


def _polls(log_path: Path) -> list[dict[str, Any]]:
    found = []
    for line in log_path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            event = json.loads(line)
            if isinstance(event, dict) and event.get("kind") == "poll" and "seconds" in event:
                found.append(event)
    return found


def _wait_for_polls(log_path: Path, count: int, proc: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 300
    while len(_polls(log_path)) < count:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"crmsync daemon: no poll cycle logged ({log_path})")
        time.sleep(0.05)
    return len(_polls(log_path))


def _last_poll(log_path: Path, count: int, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    _wait_for_polls(log_path, count, proc)
    return _polls(log_path)[count - 1]


def rate_bound_row(n: int, base: Path) -> dict[str, Any]:
    folder = base / f"rate-{n}"
    folder.mkdir(parents=True)
    with HubSpotEmulator() as hubspot:  # HubSpot's real limits: 100 requests / 10 s
        hubspot.seed(n, prefix="person")
        write_config(folder, hubspot, None, hubspot_rate=None)
        hubspot.reset_counters()
        wall, _, _ = crmsync(folder, "migrate", "--from", "hubspot", "--to", "export")
        calls = hubspot.server.call_count()
        searches = hubspot.server.call_count(pattern=r"/search$")  # their own bucket, exempt from the burst
        refused = sum(1 for _, _, status in hubspot.server.log if status == 429)  # refusals take no slot
        limits = hubspot.limits
        floor = max(window_floor(calls - searches - refused, limits.burst, limits.interval_s),
                    window_floor(searches, limits.search_per_s, 1.0))
    rate = limits.burst / limits.interval_s
    return {"n": n, "wall": wall, "calls": calls, "floor": calls / rate, "window_floor": floor, "429s": refused}


def window_floor(calls: int, limit: int, window_s: float) -> float:
    """The least time ``calls`` calls take under a rolling window of ``limit`` calls per ``window_s`` seconds:
    the first ``limit`` go at once, and call k (from 0) starts no sooner than call k - limit plus a window,
    so the last one waits (calls - 1) // limit windows. 200 calls at 100 / 10 s: 10 s, not 200 / 10 a second.
    """
    return (calls - 1) // limit * window_s if calls > 0 else 0.0


def webhook_row() -> str:
    done = subprocess.run([sys.executable, "benchmarks/daemon_webhooks.py", "latency"], cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=900)
    found = re.findall(r"p50[^0-9]*([0-9.]+)\s*s.*?p95[^0-9]*([0-9.]+)\s*s", done.stdout, re.S)
    return f"p50 {found[0][0]} s / p95 {found[0][1]} s" if found else "not measured (see daemon_webhooks.py)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--rate-bound", type=int, default=20_000)
    parser.add_argument("--skip-webhooks", action="store_true")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="crmsync-bench-"))
    small, big = migrate_row(args.small, base), migrate_row(args.contacts, base)
    bound = rate_bound_row(args.rate_bound, base)
    webhooks = "skipped" if args.skip_webhooks else webhook_row()
    rows = [
        ("migrate HubSpot -> Mailchimp", f"{big['n']:,} contacts in {big['wall']:.1f} s = {big['rate']:,.0f}/s",
         f"calls {big['calls']} / minimum {big['minimum']} = {big['calls'] / big['minimum']:.3f}", "<= 1.05"),
        ("  vs floor script", f"floor {big['floor']:.1f} s", f"ratio {big['wall'] / big['floor']:.2f}", "<= 1.5"),
        ("incremental, 1% changed", f"{big['incremental']:.1f} s ({big['incremental_updates']} updates)",
         f"{100 * big['incremental'] / big['wall']:.1f}% of the full run", "<= 5%"),
        ("  the same in the daemon", f"{big['daemon_cycle']:.2f} s a poll cycle ({big['daemon_updates']} updates)",
         f"{100 * big['daemon_cycle'] / big['wall']:.1f}% of the full run", "<= 5%"),
        ("peak RSS", f"{small['n']:,}: {small['rss']:.0f} MB; {big['n']:,}: {big['rss']:.0f} MB",
         f"ratio {big['rss'] / small['rss']:.2f}", "<= 1.3"),
        ("rate-bound HubSpot -> JSONL", f"{bound['n']:,} contacts, {bound['calls']} calls in {bound['wall']:.1f} s",
         f"floor {bound['floor']:.1f} s, ratio {bound['wall'] / bound['floor']:.2f}, 429s {bound['429s']}",
         "<= 1.1, 0 429s"),
        ("  vs the window alone", f"window floor {bound['window_floor']:.1f} s",
         f"ratio {bound['wall'] / bound['window_floor']:.2f}" if bound["window_floor"] else "(one window)",
         "(no goal)"),
        ("webhook -> provider latency", webhooks, "", "p95 <= 2 s"),
    ]
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    print(" | ".join(h.ljust(w) for h, w in zip(("measure", "figure", "against", "goal"), width, strict=True)))
    print("-+-".join("-" * w for w in width))
    for row in rows:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, width, strict=True)))


if __name__ == "__main__":
    main()
