"""Benchmark and tracking check for the scorer.

Times scoring all 150 tasks of every file in ../shared/data/inference on one core (CPU time
and wall time, median and range over several runs, after one warm-up pass), then prints how the
competition estimate tracks the official leaderboard scores of the scored_<score>.json files: per
file official, overall, task mean, parse rate; then Pearson r and mean absolute error.

``--hostile`` also scores the hostile corpus of testing/scoring/test_hostile.py (CPU time and
peak memory per generation); ``--costs`` prints the work units the parse budget charges
against the CPU time the parse takes, per document shape (the calibration of cost.py).
``--json PATH`` writes the timing and tracking figures (what ``bench/run`` reads); without the
shared data it writes why it skipped.

Usage: python bench/bench_scoring.py [--runs N] [--by-format] [--hostile] [--costs] [--json PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import toml
from common import ROOT, SHARED_DATA, machine, summary, write_result

from pytest_structeval.report.aggregate import summarize
from pytest_structeval.scoring.cost import CostedTomlDecoder, WorkMeter
from pytest_structeval.scoring.score import score_task
from pytest_structeval.scoring.yaml_upstream import UpstreamLoader, safe_load
from pytest_structeval.tasks import Task, TaskSet, load_generations

DATA = SHARED_DATA


def pearson(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / (sxx * syy) ** 0.5


def score_file(tasks: TaskSet, generations: dict[str, str]) -> list:
    return [score_task(t, generations[t.task_id]) for t in tasks]


def timed(run: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """CPU and wall seconds of ``runs`` calls (after one warm-up call)."""
    run()
    cpu, wall = [], []
    for _ in range(runs):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        run()
        cpu.append(time.process_time() - start_cpu)
        wall.append(time.perf_counter() - start_wall)
    return cpu, wall


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} s ({min(values):.3f}-{max(values):.3f})"


def measure_timing(tasks: TaskSet, runs: int) -> dict[str, dict[str, Any]]:
    """Per inference file: its size, and the CPU and wall seconds of scoring all its tasks."""
    files = {}
    for path in sorted((DATA / "inference").glob("*.json")):
        generations = load_generations(path, tasks)
        cpu, wall = timed(lambda g=generations: score_file(tasks, g), runs)
        files[path.name] = {
            "tasks": len(tasks),
            "bytes": path.stat().st_size,
            "generation_chars": sum(map(len, generations.values())),
            "cpu_s": summary(cpu),
            "wall_s": summary(wall),
        }
    return files


def print_timing(files: dict[str, dict[str, Any]], runs: int) -> None:
    print(f"scoring 150 tasks per file, one core, {runs} runs: median (min-max)")
    print(f"{'file':32} {'kB':>6}  {'CPU time':24} {'wall time':24}")
    for name, file in files.items():
        size = file["generation_chars"] / 1000
        cpu, wall = file["cpu_s"]["values"], file["wall_s"]["values"]
        print(f"{name:32} {size:6.0f}  {spread(cpu):24} {spread(wall):24}")


def measure_tracking(tasks: TaskSet) -> dict[str, Any]:
    """The estimate against the official leaderboard score of each scored_<score>.json file."""
    rows = []
    for path in sorted((DATA / "inference").glob("scored_*.json")):
        official = float(path.stem.split("_", 1)[1])
        rows.append(
            (path.name, official, summarize(score_file(tasks, load_generations(path, tasks))))
        )
    officials = [r[1] for r in rows]
    overall = [r[2]["overall"] for r in rows]
    unscored = {
        path.name: summarize(score_file(tasks, load_generations(path, tasks)))
        for path in sorted((DATA / "inference").glob("*__unscored.json"))
    }
    return {
        "files": {name: {"official": official, **s} for name, official, s in rows},
        "pearson_r": pearson(officials, overall),
        "mae": statistics.fmean(abs(a - b) for a, b in zip(officials, overall, strict=False)),
        "unscored": unscored,
    }


def print_tracking(tracking: dict[str, Any], by_format: bool) -> None:
    print(
        f"\n{'file':24} {'official':>8} {'overall':>8} {'task_mean':>9} {'parse':>6} {'strict':>6}"
    )
    for name, s in tracking["files"].items():
        print(
            f"{name:24} {s['official']:8.4f} {s['overall']:8.4f} {s['task_mean']:9.4f} "
            f"{s['parse_rate']:6.3f} {s['strict_parse_rate']:6.3f}"
        )
        if by_format:
            print("    " + "  ".join(f"{f} {v['mean']:.3f}" for f, v in s["by_format"].items()))
    print(f"\nPearson r {tracking['pearson_r']:.4f}   MAE {tracking['mae']:.4f}")
    for name, s in tracking["unscored"].items():
        print(
            f"{'unscored: ' + name:44} overall {s['overall']:.4f} "
            f"task_mean {s['task_mean']:.4f} parse {s['parse_rate']:.3f}"
        )


def print_hostile(runs: int) -> None:
    path = ROOT / "testing" / "scoring" / "test_hostile.py"
    spec = importlib.util.spec_from_file_location("hostile_corpus", path)
    assert spec is not None and spec.loader is not None
    corpus = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(corpus)
    print(f"\nhostile corpus ({path.relative_to(ROOT)}): CPU time median of {runs}, peak memory")
    worst = ("", 0.0)
    for name, output_type, generation, _zero in corpus.CASES:
        task = Task("h1", f"Text to {output_type}", "q", output_type, ("a", "csv::a", "k0.k1"))
        cpu, _wall = timed(lambda t=task, g=generation: score_task(t, g), runs)
        peak = corpus._peak_memory(lambda t=task, g=generation: score_task(t, g))
        result = score_task(task, generation)
        reason = (result.reasons or ("",))[0][:70]
        print(
            f"  {name:28} {len(generation) / 1e6:5.2f} MB  {statistics.median(cpu):.3f} s "
            f"{peak / 2**20:6.1f} MiB  score {result.score:.2f}  {reason}"
        )
        worst = max(worst, (name, statistics.median(cpu)), key=lambda w: w[1])
    print(f"  slowest: {worst[0]} at {worst[1]:.3f} s of CPU")


def _costed_toml(text: str) -> float:
    """Work units uiri toml is charged for ``text`` (the parse runs unbudgeted)."""
    decoder = CostedTomlDecoder(WorkMeter("calibration", math.inf))
    decoder.start(text)
    try:
        toml.loads(text, decoder=decoder)
    except toml.TomlDecodeError:
        pass  # a shape that fails late (uiri's "a=x=x") has done the work
    return decoder.meter.spent


def _yaml_pure(text: str) -> float:
    """Work units the pure-Python YAML loader is charged for ``text`` (unbudgeted)."""
    loader = UpstreamLoader(text, math.inf)
    loader.load()
    return loader.meter.spent


COST_SHAPES: list[tuple[str, Callable[[str], float], str]] = [
    ("yaml flow []", _yaml_pure, "[" + "[]," * 32_768 + "[]]"),
    ("yaml flow ints", _yaml_pure, "[" + "1," * 32_768 + "1]"),
    ("yaml block map", _yaml_pure, "".join(f"k{i}: {i}\n" for i in range(16_000))),
    ("yaml block nested", _yaml_pure, "".join(f"k{i}:\n  - a: 1\n    b: [x]\n" for i in range(4000))),
    ("yaml long scalar", _yaml_pure, "a: " + "x" * 1_000_000),
    ("yaml merge chain", _yaml_pure, "a0: &a0 {k0: 0}\n" + "".join(f"a{i}: &a{i} {{<<: *a{i - 1}, k{i}: {i}}}\n" for i in range(1, 600))),
    ("toml key lines", _costed_toml, "".join(f"k{i} = {i}\n" for i in range(10_000))),
    ("toml tables", _costed_toml, "".join(f"[t{i}]\nx = 1\ny = 'two'\n" for i in range(4_000))),
    ("toml string array commas", _costed_toml, "a = [" + '"x,y", ' * 7_000 + '"x"]'),
    ("toml inline table array", _costed_toml, "a = [" + "{x=1}, " * 7_000 + "{x=1}]"),
    ("toml quoted dotted header", _costed_toml, '["' + "a." * 25_000 + 'a"]\nx=1'),
    ("toml deep and long", _costed_toml, "a = " + "[" * 450 + "1, " * 16_000 + "1" + "]" * 450),
    ("toml equals chain", _costed_toml, "a=x" + "=x" * 25_000),
    ("toml escapes", _costed_toml, 'a = "' + "\\n" * 25_000 + '"'),
]  # fmt: skip


def print_costs(runs: int) -> None:
    print("\nwork units charged against CPU time (one unit is meant as about 1 us here):")
    for name, charge, text in COST_SHAPES:
        cpu, _wall = timed(lambda c=charge, t=text: c(t), runs)
        units = charge(text)
        seconds = statistics.median(cpu)
        print(
            f"  {name:28} {len(text) / 1000:6.0f} kB {units / 1000:9.0f}k units "
            f"{seconds:7.3f} s  {1e6 * seconds / units:5.2f} us/unit"
        )
    text = "".join(f"key_{i}: value {i}\n" for i in range(8_000))
    cpu_fast, _ = timed(lambda: safe_load(text, budget=math.inf), runs)
    cpu_pure, _ = timed(lambda: _yaml_pure(text), runs)
    print(
        f"  yaml block map, fast path {statistics.median(cpu_fast):.3f} s vs pure-Python "
        f"loader {statistics.median(cpu_pure):.3f} s (same value, same units)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, metavar="N", help="timing runs (default 5)")
    parser.add_argument("--by-format", action="store_true", help="also print per-format means")
    parser.add_argument("--hostile", action="store_true", help="also time the hostile corpus")
    parser.add_argument("--costs", action="store_true", help="also print the cost calibration")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if not DATA.is_dir():
        reason = f"{DATA} not found: the reference data lives next to the repository"
        write_result(args.json, {"skipped": reason})
        raise SystemExit(0 if args.json else reason)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the budget says
    info = machine()
    tasks = TaskSet.load(DATA / "public_150.json")
    files = measure_timing(tasks, args.runs)
    print_timing(files, args.runs)
    tracking = measure_tracking(tasks)
    print_tracking(tracking, args.by_format)
    write_result(
        args.json,
        {"machine": info, "runs": args.runs, "files": files, "tracking": tracking, "cores": 1},
    )
    if args.hostile:
        print_hostile(max(1, args.runs // 2))
    if args.costs:
        print_costs(max(1, args.runs // 2))


if __name__ == "__main__":
    main()
