"""kill -9 during a 50,000-row migration, five times, then a rerun: the same file as an uninterrupted run."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROWS = 50_000
KILLS = 5


def _write_source(path: Path) -> None:
    rnd = random.Random(7)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "last_name", "company", "tags", "consent", "custom.score"])
        for i in range(ROWS):
            writer.writerow([
                f"Person{i}@Example.com" if i % 11 else f"person{i}@example.com ",
                f"Zoë{i}", f"Ñandú{i}", f"Company {i % 97}", ";".join(rnd.sample(["a", "b", "vip", "x"], 2)),
                "unsubscribed" if i % 13 == 0 else "subscribed", str(rnd.randint(0, 10**6)),
            ])
        writer.writerow(["person5@example.com", "Dup", "Case", "", "", "", ""])  # a duplicate differing in case
        writer.writerow(["not-an-address", "Bad", "", "", "", "", ""])


def _config(folder: Path, state_url: str, source: Path) -> Path:
    config = folder / "crmsync.toml"
    config.write_text(
        f'[state]\nurl = "{state_url}"\n\n[providers.src]\ntype = "csv"\npath = "{source}"\n\n'
        f'[providers.dst]\ntype = "jsonl"\npath = "out.jsonl"\n'
    )
    return config


def _migrate(config: Path) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "connector", "migrate", "--from", "src", "--to", "dst", "--json",
            "--config", str(config)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=config.parent)


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run(tmp_path: Path, state_url: str):
    source = tmp_path / "in.csv"
    _write_source(source)
    (tmp_path / "clean").mkdir()
    (tmp_path / "crashy").mkdir()
    clean_url = f"sqlite:///{tmp_path / 'clean' / 'state.db'}"
    clean = _migrate(_config(tmp_path / "clean", clean_url, source))
    started = time.monotonic()
    assert clean.wait(timeout=600) == 1  # one invalid row is reported
    duration = time.monotonic() - started
    expected = _rows(tmp_path / "clean" / "out.jsonl")
    assert len(expected) == ROWS

    config = _config(tmp_path / "crashy", state_url, source)
    rnd = random.Random(20261123)
    moments = [rnd.uniform(0.05, 0.2) * duration for _ in range(KILLS)]  # five short lives: each ends mid-run
    killed = 0
    for moment in moments:
        proc = _migrate(config)
        time.sleep(moment)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait(timeout=60)
    assert killed >= 3, "the kills must land while the migration runs"
    final = _migrate(config)
    out, err = final.communicate(timeout=600)
    assert final.returncode in (0, 1), err.decode(errors="replace")[-2000:]
    got = _rows(tmp_path / "crashy" / "out.jsonl")
    assert len(got) == len({r["email"] for r in got}), "no duplicate"
    assert got == expected, "no loss, no difference, not even in the rows' order"
    assert not [p for p in os.listdir(tmp_path / "crashy") if "staging" in p or p.endswith(".tmp")]
