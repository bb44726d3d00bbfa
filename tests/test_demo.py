"""`crmsync demo` tells the story it promises: creates everywhere, unsubscribes spread, a conflict waits, no echo."""

from __future__ import annotations

import json

from click.testing import CliRunner

from connector.cli import main


def test_demo_report(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path / "demo"), "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    first, second = report["first_sync"], report["second_sync"]
    assert first["providers"]["export"]["created"] == 21  # everyone, once
    assert all(f["created"] + f["updated"] == 0 for f in second["providers"].values())
    assert len(report["unsubscribes_spread_to_hubspot"]) == 2
    assert [c["field"] for c in report["open_conflicts"]] == ["company"]
    assert (tmp_path / "demo" / "state.db").exists()


def test_demo_prints_next_commands(tmp_path):
    result = CliRunner().invoke(main, ["demo", "--dir", str(tmp_path / "demo")], catch_exceptions=False)
    assert result.exit_code == 0
    assert "crmsync conflicts --config" in result.stdout and "Conflict #1 waits" in result.stdout
