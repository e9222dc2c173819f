"""Benchmark and tracking check for the scorer.

Times scoring all 150 tasks of long_outputs__unscored.json on one core (median of several runs)
and prints how the competition estimate tracks the official leaderboard scores of the
scored_<score>.json files: per file official, overall, task mean, parse rate; then Pearson r
and mean absolute error.  Usage: python bench/bench_scoring.py [--runs N] [--by-format]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from pytest_structeval.report.aggregate import summarize
from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import TaskSet

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def pearson(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / (sxx * syy) ** 0.5


def score_file(tasks: TaskSet, path: Path) -> list:
    generations = {
        g["task_id"]: g["generation"] for g in json.loads(path.read_text(encoding="utf-8"))
    }
    return [score_task(t, generations[t.task_id]) for t in tasks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, metavar="N", help="timing runs (default 7)")
    parser.add_argument("--by-format", action="store_true", help="also print per-format means")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} not found: the reference data lives next to the repository")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the budget says
    tasks = TaskSet.load(DATA / "public_150.json")

    long_path = DATA / "inference" / "long_outputs__unscored.json"
    score_file(tasks, long_path)  # warm caches (regexes, imports)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        score_file(tasks, long_path)
        times.append(time.perf_counter() - start)
    print(
        f"scoring 150 tasks of {long_path.name}: median {statistics.median(times):.3f} s "
        f"over {args.runs} runs (min {min(times):.3f} s), one core"
    )

    rows = []
    for path in sorted((DATA / "inference").glob("scored_*.json")):
        official = float(path.stem.split("_", 1)[1])
        summary = summarize(score_file(tasks, path))
        rows.append((path.name, official, summary))
    print(
        f"\n{'file':24} {'official':>8} {'overall':>8} {'task_mean':>9} {'parse':>6} {'strict':>6}"
    )
    for name, official, s in rows:
        print(
            f"{name:24} {official:8.4f} {s['overall']:8.4f} {s['task_mean']:9.4f} "
            f"{s['parse_rate']:6.3f} {s['strict_parse_rate']:6.3f}"
        )
        if args.by_format:
            print("    " + "  ".join(f"{f} {v['mean']:.3f}" for f, v in s["by_format"].items()))
    officials = [r[1] for r in rows]
    overall = [r[2]["overall"] for r in rows]
    mae = statistics.fmean(abs(a - b) for a, b in zip(officials, overall, strict=False))
    print(f"\nPearson r {pearson(officials, overall):.4f}   MAE {mae:.4f}")
    for name, _o, s in [
        ("unscored: " + p.name, 0, summarize(score_file(tasks, p)))
        for p in sorted((DATA / "inference").glob("*__unscored.json"))
    ]:
        print(
            f"{name:44} overall {s['overall']:.4f} task_mean {s['task_mean']:.4f} parse {s['parse_rate']:.3f}"
        )


if __name__ == "__main__":
    main()
