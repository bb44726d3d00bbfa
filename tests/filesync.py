"""Helpers for end-to-end tests on file providers: write a config, run the CLI, read the files back."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from connector.cli import main


def write_config(folder: Path, state_url: str, providers: Mapping[str, tuple[str, str]], *, policy: str = "newest",
                 extra: str = "") -> Path:
    """providers: name -> (type, file name)."""
    lines = [f'[state]\nurl = "{state_url}"\n', f'[sync]\nconflict_policy = "{policy}"\n'
             f'priority = [{", ".join(repr(n) for n in providers)}]\n'.replace("'", '"')]
    for name, (kind, path) in providers.items():
        lines.append(f'[providers.{name}]\ntype = "{kind}"\npath = "{path}"\n')
    lines.append(extra)
    config = folder / "crmsync.toml"
    config.write_text("\n".join(lines))
    return config


def run(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, [*args, "--config", str(config), "--json"], catch_exceptions=False)
    out = result.stdout.strip()
    return result.exit_code, json.loads(out) if out.startswith("{") else {"raw": out, "stderr": result.stderr}


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    columns = list(columns or {k: None for row in rows for k in row})
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: row.get(k, "") for k in columns})


def read_csv(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["email"]: row for row in csv.DictReader(handle)}


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def read_jsonl(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            assert row["email"] not in out, "a target file holds one record per contact"
            out[row["email"]] = row
    return out
