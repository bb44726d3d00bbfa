"""The ``crmsync`` command line: a thin shell over the engine (SPEC.md "Commands")."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from adapters.base import CursorError
from adapters.errors import ProviderError
from connector.app import open_engine, open_store
from connector.config import Config, ConfigError, find_config_path, load_config, redacted_summary
from connector.engine import Engine, UsageError
from connector.progress import progress_for_terminal
from connector.report import ExitCode, RunReport
from mappings.normalize import InvalidEmail, normalize_email
from state.db import StateError

if TYPE_CHECKING:
    from rich.console import Console

# rich (tables, colours) is imported by the commands that print for people: a --json run or a
# scheduled cycle never pays for it at start-up.

F = TypeVar("F", bound=Callable[..., Any])


def common_options(func: F) -> F:
    func = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")(func)
    config_help = "Config file (default: $CRMSYNC_CONFIG, else ./crmsync.toml)."
    return click.option("--config", "config_path", default=None, help=config_help)(func)


def _load(config_path: str | None) -> Config:
    return load_config(find_config_path(config_path))


def _console() -> Console:
    from rich.console import Console

    return Console()


def _emit_json(document: Any) -> None:
    click.echo(json.dumps(document, default=str, ensure_ascii=False))


def _finish(report: RunReport, *, as_json: bool) -> None:
    if as_json:
        _emit_json(report.to_json())
    else:
        from connector.render import print_report

        print_report(report, _console())
    sys.exit(int(report.exit_code))


def _fail(code: ExitCode, message: str) -> None:
    click.echo(f"crmsync: {message}", err=True)
    sys.exit(int(code))


def _email_argument(raw: str) -> str:
    try:
        return normalize_email(raw)
    except InvalidEmail as exc:
        raise UsageError(f"EMAIL: {exc}") from None


class CrmsyncGroup(click.Group):
    """Turns the known failure classes into SPEC.md's exit codes, in one line, with no secret in it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (ConfigError, UsageError, StateError, CursorError) as exc:
            _fail(ExitCode.BAD_CONFIG, str(exc))
        except ProviderError as exc:
            _fail(ExitCode.PROVIDER_UNAVAILABLE, str(exc))
        return None


@click.group(cls=CrmsyncGroup)
@click.version_option(package_name="crmsync")
def main() -> None:
    """Two-way contact sync between CRMs, email platforms and files, with sticky consent."""


@main.command()
@common_options
def check(config_path: str | None, as_json: bool) -> None:
    """Validate the config and reach every provider."""
    config = _load(config_path)
    results: dict[str, dict[str, Any]] = {}
    with open_engine(config) as engine:
        for name, rt in engine.runtimes.items():
            try:
                rt.adapter.check()
                results[name] = {"type": rt.type, "ok": True, "error": None}
            except ProviderError as exc:
                results[name] = {"type": rt.type, "ok": False, "error": str(exc)}
            except OSError as exc:
                results[name] = {"type": rt.type, "ok": False, "error": type(exc).__name__}
    ok = all(r["ok"] for r in results.values())
    if as_json:
        _emit_json({"config": redacted_summary(config), "ok": ok, "providers": results})
    else:
        from rich.table import Table

        table = Table("provider", "type", "result")
        for name, r in results.items():
            table.add_row(name, r["type"], "[green]ok[/]" if r["ok"] else f"[red]{r['error']}[/]")
        _console().print(table)
    sys.exit(int(ExitCode.OK if ok else ExitCode.PROVIDER_UNAVAILABLE))


@main.command()
@click.option("--provider", "providers", multiple=True, help="Only these providers (repeatable).")
@click.option("--dry-run", is_flag=True, help="Print the plan; write nothing anywhere, not even cursors.")
@common_options
def sync(providers: tuple[str, ...], dry_run: bool, config_path: str | None, as_json: bool) -> None:
    """One cycle: pull changes, reconcile, push to every provider."""
    config = _load(config_path)
    progress = progress_for_terminal(enabled=not as_json)
    try:
        with open_engine(config, names=providers or None, dry_run=dry_run, progress=progress) as engine:
            report = engine.sync()
    finally:
        progress.close()
    _finish(report, as_json=as_json)


@main.command()
@click.option("--from", "source", required=True, help="The provider to copy from.")
@click.option("--to", "target", required=True, help="The provider to copy to.")
@click.option("--dry-run", is_flag=True, help="Print what would be written; write nothing.")
@click.option("--resume", is_flag=True, help="Continue an interrupted migration (a rerun does so too).")
@common_options
def migrate(source: str, target: str, dry_run: bool, resume: bool, config_path: str | None, as_json: bool) -> None:
    """Copy every contact of one provider to another, resumably."""
    config = _load(config_path)
    progress = progress_for_terminal(enabled=not as_json)
    try:
        with open_engine(config, names=[source, target], dry_run=dry_run, progress=progress) as engine:
            report = engine.migrate(source, target, resume=resume)
    finally:
        progress.close()
    _finish(report, as_json=as_json)


@main.command()
@common_options
def status(config_path: str | None, as_json: bool) -> None:
    """Cursors, last runs, pending retries, open conflicts and suppressions."""
    from connector.daemon.leases import Leases

    config = _load(config_path)
    store = open_store(config)
    try:
        state = store.status()
        state["leases"] = Leases(store).snapshot()  # which daemon replica runs which cycle
    finally:
        store.close()
    if as_json:
        _emit_json(state)
    else:
        from connector.render import print_status

        print_status(state, _console())


@main.command()
@common_options
def conflicts(config_path: str | None, as_json: bool) -> None:
    """List the field conflicts waiting for a person."""
    config = _load(config_path)
    store = open_store(config)
    try:
        rows = store.open_conflicts()
    finally:
        store.close()
    if as_json:
        _emit_json({"conflicts": rows})
        return
    from rich.table import Table

    table = Table("id", "contact", "field", "values")
    for row in rows:
        values = "; ".join(f"{c['source']}: {c['value']!r}" for c in row["candidates"])
        table.add_row(str(row["id"]), row["email"], row["field"], values)
    _console().print(table if rows else "No open conflicts.")


@main.command()
@click.argument("conflict_id", type=int)
@click.option("--use", "use_provider", default=None, help="Take the value this provider has.")
@click.option("--value", default=None, help="Take this value.")
@common_options
def resolve(conflict_id: int, use_provider: str | None, value: str | None, config_path: str | None,
            as_json: bool) -> None:
    """Settle a conflict; the next sync writes the chosen value everywhere."""
    if (use_provider is None) == (value is None):
        raise UsageError("resolve: give exactly one of --use PROVIDER or --value V")
    config = _load(config_path)
    store = open_store(config)
    try:
        chosen: Any = value
        resolution = "value"
        if use_provider is not None:
            rows = {r["id"]: r for r in store.open_conflicts()}
            if conflict_id not in rows:
                raise UsageError(f"resolve: conflict {conflict_id} is not open")
            by_source = {c["source"]: c["value"] for c in rows[conflict_id]["candidates"]}
            if use_provider not in by_source:
                raise UsageError(f"--use: {use_provider} is not one of {', '.join(sorted(by_source))}")
            chosen, resolution = by_source[use_provider], f"use {use_provider}"
        store.resolve_conflict(conflict_id, value=chosen, resolution=resolution)
    finally:
        store.close()
    if as_json:
        _emit_json({"resolved": conflict_id, "resolution": resolution})
    else:
        click.echo(f"Conflict {conflict_id} resolved ({resolution}); the next sync writes it everywhere.")


@main.command()
@click.argument("email")
@common_options
def unsubscribe(email: str, config_path: str | None, as_json: bool) -> None:
    """Suppress an address in every provider."""
    _for_one_person(Engine.unsubscribe, email, config_path, as_json=as_json)


@main.command()
@click.argument("email")
@common_options
def forget(email: str, config_path: str | None, as_json: bool) -> None:
    """Erase a person from every provider; only a keyed hash stays."""
    _for_one_person(Engine.forget, email, config_path, as_json=as_json)


def _for_one_person(
    action: Callable[[Engine, str], RunReport], email: str, config_path: str | None, *, as_json: bool
) -> None:
    config = _load(config_path)
    address = _email_argument(email)
    with open_engine(config) as engine:
        report = action(engine, address)
    _finish(report, as_json=as_json)


@main.command()
@click.option("--seed", default=0, show_default=True, help="Sample contacts to seed in each emulator.")
@common_options
def sandbox(seed: int, config_path: str | None, as_json: bool) -> None:
    """Run every provider emulator on localhost until SIGTERM; print a config that reaches them."""
    from connector.sandbox import announcement, config_text, running_emulators, wait_for_termination

    _ = config_path  # the sandbox needs no config: it prints one
    with running_emulators(seed=seed, kinds=None) as emulators:
        if as_json:
            click.echo(json.dumps(announcement(emulators)))
        else:
            click.echo(config_text(emulators))
            click.echo("# emulators running; stop with Ctrl-C or SIGTERM", err=True)
        sys.stdout.flush()
        wait_for_termination()


@main.command()
@click.option("--dir", "directory", default="crmsync-demo", show_default=True, help="Where the demo files go.")
@click.option("--keep-running", is_flag=True, help="Leave the emulators up after the report, until Ctrl-C.")
@common_options
def demo(directory: str, keep_running: bool, config_path: str | None, as_json: bool) -> None:
    """HubSpot, Zoho and Mailchimp emulators with sample data, a sync, and a report of what crmsync did."""
    from connector.demo import run_demo

    _ = config_path  # the demo writes its own config into --dir
    code = run_demo(Path(directory), as_json=as_json, console=_console(), keep_running=keep_running)
    sys.exit(int(code))


@main.command()
@click.option("--log-format", type=click.Choice(["plain", "json"]), default="plain", show_default=True,
              help="One line per event, as text or as JSON.")
@click.option("--listen", default=None, help="HOST:PORT for webhooks, /healthz, /metrics (default: webhooks.listen).")
@click.option("--debounce", default=0.5, show_default=True, type=click.FloatRange(0),
              help="Seconds webhook events wait so that a burst for one contact becomes one cycle.")
@click.option("--lease-ttl", default=30.0, show_default=True, type=click.FloatRange(1),
              help="Seconds before a dead replica's lease can be taken over.")
@click.option("--shutdown-timeout", default=30.0, show_default=True, type=click.FloatRange(1),
              help="Seconds SIGTERM waits for the batch in hand.")
@common_options
def daemon(log_format: str, listen: str | None, debounce: float, lease_ttl: float, shutdown_timeout: float,
           config_path: str | None, as_json: bool) -> None:
    """Scheduled syncs and the webhook server until SIGTERM/SIGINT."""
    import datetime as dt

    from connector.daemon import DaemonOptions, run_daemon

    config = _load(config_path)
    options = DaemonOptions(listen=listen, log_format=log_format, debounce=dt.timedelta(seconds=debounce),
                            lease_ttl=dt.timedelta(seconds=lease_ttl),
                            shutdown_timeout=dt.timedelta(seconds=shutdown_timeout))

    def announce(ready: dict[str, Any]) -> None:
        if as_json:
            click.echo(json.dumps(ready))
            sys.stdout.flush()

    sys.exit(run_daemon(config, options, announce=announce))
