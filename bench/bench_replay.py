"""Wall time of a whole replay run: `pytest --tasks=… --generations=… --out=…` in a fresh process.

The plugin issue asks for <= 5 s on the 150 competition tasks with a real submission. Runs the
real command line (interpreter start, plugin load, collection, scoring, report files) several
times and prints each time and the median.

    python bench/bench_replay.py [--tasks PATH] [--generations PATH] [--runs N] [-- extra pytest args]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=Path, default=SHARED / "public_150.json")
    parser.add_argument(
        "--generations", type=Path, default=SHARED / "inference" / "scored_0.77064.json"
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("extra", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args()
    if not args.tasks.exists() or not args.generations.exists():
        print(f"missing input: {args.tasks} or {args.generations}", file=sys.stderr)
        return 2
    times = []
    with tempfile.TemporaryDirectory() as scratch:
        # An empty scratch project, as a user's own: snapshots and reports land there, not in
        # this repository.
        project, out = Path(scratch) / "project", Path(scratch) / "out"
        project.mkdir(parents=True)
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--tasks={args.tasks}",
            f"--generations={args.generations}",
            f"--out={out}",
            *args.extra,
        ]
        for _ in range(args.runs):
            started = time.perf_counter()
            done = subprocess.run(command, cwd=project, capture_output=True, text=True)
            times.append(time.perf_counter() - started)
            if done.returncode not in (0, 1):
                print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
                return done.returncode
            if not (Path(out) / "report.json").exists():
                print("no report.json written", file=sys.stderr)
                return 1
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )
    print("replay wall times (s): " + ", ".join(f"{t:.2f}" for t in times))
    print(f"median {statistics.median(times):.2f} s (acceptance: <= 5 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
