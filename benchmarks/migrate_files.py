"""Migrate a generated CSV to JSONL at 10,000 and 100,000 rows; print contacts/s and peak RSS.

Usage: python benchmarks/migrate_files.py [--rows 10000 100000] [--keep DIR]
Each run is a separate `crmsync migrate` process pinned to one core, on a fresh SQLite state file.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_csv(path: Path, rows: int) -> None:
    rnd = random.Random(rows)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "first_name", "last_name", "phone", "company", "country", "industry", "tags",
                         "consent", "custom.lifetime_value"])
        for i in range(rows):
            writer.writerow([
                f"Person.{i}@Example{i % 50}.com", f"Zoë{i}", f"Müller{i}", f"+44 20 7946 {i % 10000:04d}",
                f"Company {i % 997}", rnd.choice(["GB", "US", "DE"]), rnd.choice(["Software", "Retail"]),
                ";".join(rnd.sample(["prospect", "customer", "newsletter", "trial"], 2)),
                "unsubscribed" if i % 17 == 0 else "subscribed", str(rnd.randint(0, 50_000)),
            ])


def run_once(rows: int, folder: Path) -> tuple[float, float]:
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / "in.csv"
    write_csv(source, rows)
    config = folder / "crmsync.toml"
    config.write_text('[state]\nurl = "sqlite:///state.db"\n\n[providers.src]\ntype = "csv"\npath = "in.csv"\n\n'
                      '[providers.dst]\ntype = "jsonl"\npath = "out.jsonl"\n')
    cmd = [sys.executable, "-m", "connector", "migrate", "--from", "src", "--to", "dst", "--json", "--config",
           str(config)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, check=False, preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"migrate failed ({done.returncode}): {done.stderr.decode()[-500:]}")
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if rss_mb < before / 1024:  # ru_maxrss of children is a max over all children so far
        rss_mb = before / 1024
    return wall, rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--keep", type=Path, default=None)
    args = parser.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="crmsync-bench-"))
    results = {}
    print(f"{'rows':>8} {'wall s':>8} {'contacts/s':>11} {'peak RSS MB':>12}")
    for rows in sorted(args.rows):  # ascending, so each child's max RSS is its own
        wall, rss = run_once(rows, base / str(rows))
        results[rows] = (wall, rss)
        print(f"{rows:>8} {wall:>8.2f} {rows / wall:>11.0f} {rss:>12.1f}")
    if len(results) >= 2:
        small, large = min(results), max(results)
        print(f"RSS({large}) / RSS({small}) = {results[large][1] / results[small][1]:.2f}  (goal <= 1.3)")
        print(f"goals: >= 10,000 contacts/s -> {'met' if large / results[large][0] >= 10_000 else 'not met'}; "
              f"peak RSS < 250 MB -> {'met' if results[large][1] < 250 else 'not met'}")


if __name__ == "__main__":
    main()
