"""Run the cross-provider chaos property with many more examples than CI, and print how many survived.

Usage: python benchmarks/chaos.py [--examples 200]
Each example: generated edits and faults in the HubSpot, Zoho and Mailchimp emulators, then the check that
every provider agrees (tests/test_chaos.py).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=200)
    args = parser.parse_args()
    env = {**os.environ, "CRMSYNC_CHAOS_EXAMPLES": str(args.examples)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_chaos.py",
         "--hypothesis-show-statistics"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )
    wall = time.perf_counter() - started
    survived = args.examples if done.returncode == 0 else None
    print(f"chaos examples asked: {args.examples}")
    print(f"survived: {survived if survived is not None else 'a counterexample was found (see below)'}")
    print(f"wall time: {wall:.0f} s")
    if done.returncode != 0:
        print(done.stdout[-4000:])
        raise SystemExit(1)


if __name__ == "__main__":
    main()
