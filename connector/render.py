"""Human-readable output of runs and status (rich); ``--json`` bypasses it."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connector.report import RunReport

_FIGURES = ("pulled", "created", "updated", "unchanged", "unsubscribed", "deleted", "failed")
_MAX_ERRORS_SHOWN = 20


def print_report(report: RunReport, console: Console) -> None:
    title = f"{report.kind} {report.run_id}" + (" (dry run: nothing was written)" if report.dry_run else "")
    table = Table("provider", *_FIGURES, title=title)
    for name, figures in report.providers.items():
        table.add_row(name, *(str(getattr(figures, f)) for f in _FIGURES))
    console.print(table)
    if report.conflicts:
        console.print(f"{report.conflicts} conflict(s) found; open ones: crmsync conflicts")
    for name, why in report.provider_errors.items():
        console.print(f"[red]{escape(name)} stopped:[/] {escape(why)}")  # texts from outside are not markup
    for error in report.errors[:_MAX_ERRORS_SHOWN]:
        where = error.get("where") or error.get("email") or ""
        console.print(f"[yellow]{escape(error['provider'])}[/] {escape(where)}: {escape(error['message'])}",
                      highlight=False)
    if len(report.errors) > _MAX_ERRORS_SHOWN:
        console.print(f"... and {len(report.errors) - _MAX_ERRORS_SHOWN} more (use --json for all)")
    for note in report.notes:
        console.print(note, markup=False)


def print_status(state: dict[str, Any], console: Console) -> None:
    console.print(f"Hub contacts: {state['contacts']}   open conflicts: {state['open_conflicts']}   "
                  f"suppressed: {state['suppressed']}")
    links = Table("provider", "linked contacts", "pending writes")
    pending: dict[str, list[str]] = {}
    for key, count in state["pending"].items():
        provider, kind = key.split(":", 1)
        pending.setdefault(provider, []).append(f"{count} {kind}")
    for provider in sorted(set(state["links"]) | set(pending)):
        links.add_row(provider, str(state["links"].get(provider, 0)), ", ".join(pending.get(provider, [])) or "0")
    console.print(links)
    cursors = Table("provider", "stream", "phase", "updated")
    for cur in state["cursors"]:
        phase = "done" if cur["done"] else cur["cursor"].get("phase", "")
        cursors.add_row(cur["provider"], cur["stream"], phase, str(cur["updated_at"]))
    console.print(cursors)
    runs = Table("run", "kind", "status", "started", "finished")
    for run in state["runs"]:
        runs.add_row(run["id"][:8], run["kind"] + (" (dry)" if run["dry_run"] else ""), run["status"],
                     str(run["started_at"]), str(run["finished_at"] or ""))
    console.print(runs)
    if state.get("leases"):
        leases = Table("lease", "held by", "until", "last done")
        for lease in state["leases"]:
            leases.add_row(*(lease[key] or "-" for key in ("name", "holder", "expires_at", "last_done_at")))
        console.print(leases)
    console.print("Webhook inbox: " + (", ".join(f"{n} {s}" for s, n in state["inbox"].items()) or "empty"))
