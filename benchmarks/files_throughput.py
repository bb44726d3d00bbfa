"""Throughput and peak memory of the csv/jsonl providers: read N rows; write + finish N rows.

Usage: python benchmarks/files_throughput.py [N ...]   (default 100000)
Each phase runs in its own process so that its peak RSS is its own.
"""

from __future__ import annotations

import csv
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

COLUMNS = [
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "country",
    "region",
    "city",
    "industry",
    "lifecycle",
    "tags",
    "consent",
    "custom.score",
]


def row(i: int) -> dict[str, str]:
    return {
        "email": f"contact{i}@example.com",
        "first_name": f"First{i}",
        "last_name": f"Last{i}",
        "phone": f"+4420{i:08d}",
        "company": f"Company {i % 977}",
        "job_title": "Engineer",
        "country": "GB",
        "region": "England",
        "city": "Leeds",
        "industry": "Software",
        "lifecycle": "customer",
        "tags": "a;vip" if i % 3 else "a",
        "consent": "subscribed",
        "custom.score": str(i % 100),
    }


def make_source(kind: str, path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        if kind == "csv":
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(row(i) for i in range(n))
        else:
            handle.writelines(json.dumps(row(i)) + "\n" for i in range(n))


def phase(name: str, kind: str, folder: Path, n: int) -> None:
    from adapters.base import Cursor, WriteRequest
    from adapters.files import create_adapter

    path = folder / f"contacts.{kind}"
    adapter = create_adapter("bench", {"type": kind, "path": str(path)})
    start = time.perf_counter()
    if name == "read":
        count = sum(len(page.records) for page in adapter.read_contacts(Cursor()))
    else:
        count = 0
        for first in range(0, n, adapter.max_batch):
            batch = []
            for i in range(first, min(n, first + adapter.max_batch)):
                fields = row(i)
                batch.append(WriteRequest(ref=str(i), remote_id=None, email=fields["email"], fields=fields))
            count += sum(result.ok for result in adapter.write_contacts(batch))
        adapter.finish_writes()
    elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "phase": name,
                "kind": kind,
                "rows": count,
                "seconds": round(elapsed, 3),
                "rows_per_s": round(count / elapsed),
                "peak_rss_mb": round(peak_mb, 1),
            }
        )
    )


def main(sizes: list[int]) -> None:
    for n in sizes:
        for kind in ("csv", "jsonl"):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                make_source(kind, folder / f"contacts.{kind}", n)
                subprocess.run([sys.executable, __file__, "--phase", "read", kind, tmp, str(n)], check=True)
            with tempfile.TemporaryDirectory() as tmp:  # a fresh target, then an update of every row
                for _ in ("create", "update"):
                    subprocess.run([sys.executable, __file__, "--phase", "write", kind, tmp, str(n)], check=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--phase"]:
        phase(sys.argv[2], sys.argv[3], Path(sys.argv[4]), int(sys.argv[5]))
    else:
        main([int(arg) for arg in sys.argv[1:]] or [100_000])
