"""Run many more cross-provider chaos schedules than CI does, and print how many survived.

Usage: python benchmarks/chaos.py [--examples 200] [--seed N]
Each schedule (tests/test_chaos.py): generated edits and email changes, 429/5xx/dropped connections, partial batch
failures and SIGKILLs of a crmsync process in the HubSpot, Zoho and Mailchimp emulators, then the check that every
provider agrees. Unlike the test, a failing schedule does not stop the run: it is counted and printed, unshrunk.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from test_chaos import SCRIPTS, check_chaos  # noqa: E402 - tests/ is not a package


def trial_runner(examples: int, failures: list[tuple[list[tuple[Any, ...]], str]], tally: list[int]) -> Any:
    @settings(max_examples=examples, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(script=SCRIPTS)
    def trial(script: list[tuple[Any, ...]]) -> None:
        tally[0] += 1
        with tempfile.TemporaryDirectory(prefix="crmsync-chaos-") as folder:
            try:
                check_chaos(script, Path(folder))
            except Exception as exc:  # any break counts as a failed schedule, and the run goes on
                where = traceback.extract_tb(exc.__traceback__)[-1]  # a bare assert says nothing else
                failures.append((script, f"{repr(exc)[:300]} at {Path(where.filename).name}:{where.lineno}"))

    return trial


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed, to repeat a run")
    args = parser.parse_args()
    failures: list[tuple[list[tuple[Any, ...]], str]] = []
    tally = [0]
    trial = trial_runner(args.examples, failures, tally)
    if args.seed is not None:
        trial = seed(args.seed)(trial)
    started = time.perf_counter()
    trial()
    wall = time.perf_counter() - started
    print(f"chaos schedules run: {tally[0]} (asked {args.examples})")
    print(f"survived: {tally[0] - len(failures)}")
    print(f"failed: {len(failures)}")
    print(f"wall time: {wall:.0f} s")
    for script, why in failures[:10]:
        print(f"- {script}\n  {why}")
    if failures:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
