"""``bench/run``: every benchmark figure on this machine in one run, one table, bench/results.json.

    bench/run [--quick] [--only a,b,...] [--repeat N] [--results PATH] [--workdir DIR] [--keep]

Figures (``--only`` picks some; the default is a-f):

  a  the plugin's cold run against the bare ``LLM.chat`` script, same model, engine and
     sampling arguments (builtin:tiny, the 150 bundled tasks, max_tokens 64, enforce_eager)
  b  the warm re-run (every generation cached) against cold, and against a replay of the cold
     run's own inference.json
  c  scoring throughput over each file in ../shared/data/inference (skipped without it)
  d  served (``--serve``) against offline throughput, builtin:tiny, max_tokens 512
  e  pytest collection of the 150 tasks (``pytest --co -q --model=builtin:tiny``)
  f  the SmolLM2 smoke subset (``-m smoke``: 19 tasks) at max_tokens 256, fresh cache each run
  g  the preflight's own cost (not in the default set)

Each figure is the median of ``--repeat`` runs (5; ``--quick``: 1 run each and smaller
settings, for smoke-testing) with the spread (min-max). The scripts beside this file measure;
each runs as a child process writing its ``--json`` result, which this file turns into rows.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    SHARED_DATA,
    child_env,
    describe,
    load_average,
    machine,
    read_result,
    remove,
    summary,
    timed_process,
    write_result,
)

BENCH = Path(__file__).resolve().parent
DEFAULT_FIGURES = "abcdef"
ALL_FIGURES = "abcdefg"
RESULTS = BENCH / "results.json"


@dataclass(frozen=True)
class Sizes:
    """What a run measures: the full set, or ``--quick``'s smaller one."""

    repeat: int
    tiny_tokens: int  # (a), (b)
    served_tokens: int  # (d)
    smollm2_tokens: int  # (f)

    @classmethod
    def choose(cls, quick: bool, repeat: int | None) -> Sizes:
        sizes = cls(1, 16, 64, 32) if quick else cls(5, 64, 512, 256)
        return sizes if repeat is None else replace(sizes, repeat=repeat)


@dataclass
class Row:
    figure: str
    name: str
    unit: str
    stats: dict[str, Any] | None  # common.summary, or None when not measured
    bar: tuple[str, float] | None = None  # ("<=", 1.10): the median must satisfy it
    verdict: str = field(init=False)

    def __post_init__(self) -> None:
        if self.stats is None:
            self.verdict = "n/a"
        elif self.bar is None:
            self.verdict = ""
        else:
            op, limit = self.bar
            median = self.stats["median"]
            self.verdict = (
                "PASS" if (median <= limit if op == "<=" else median >= limit) else "FAIL"
            )

    def cells(self) -> list[str]:
        digits = 3 if self.stats and self.stats["max"] < 10 else 1
        stats = self.stats
        return [
            f"({self.figure}) {self.name}",
            f"{stats['median']:.{digits}f} {self.unit}" if stats else "-",
            f"{stats['min']:.{digits}f}-{stats['max']:.{digits}f}" if stats else "-",
            str(stats["runs"]) if stats else "-",
            f"{self.bar[0]} {self.bar[1]:g}" if self.bar else "",
            self.verdict,
        ]

    def to_json(self) -> dict[str, Any]:
        stats = self.stats or {}
        return {
            "figure": self.figure,
            "name": self.name,
            "unit": self.unit,
            **{k: stats.get(k) for k in ("median", "min", "max", "runs")},
            "bar": list(self.bar) if self.bar else None,
            "verdict": self.verdict,
        }


@dataclass
class Job:
    """One benchmark script run for some figures; ``rows`` turns its result into table rows.
    ``skipped``: why it cannot run on this machine (it is then reported, not run)."""

    figures: str
    script: str
    args: list[str]
    rows: Callable[[dict[str, Any]], tuple[list[Row], list[str]]]
    skipped: str | None = None


def _scaled(stats: dict[str, Any], scale: Callable[[float], float]) -> dict[str, Any]:
    """``stats`` of a derived quantity (e.g. tasks/s from seconds): the scale is monotonic, so
    its median is the scaled median."""
    return {**summary([scale(v) for v in stats["values"]]), "median": scale(stats["median"])}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return sorted(runs, key=lambda run: run["seconds"])[len(runs) // 2]


def _phases(run: dict[str, Any]) -> str:
    """A run's wall time split into the phases it reports, and the rest."""
    phases = run.get("phases") or {}
    rest = run["seconds"] - sum(phases.values())
    return ", ".join([*(f"{k} {v:.1f} s" for k, v in phases.items()), f"the rest {rest:.1f} s"])


def runs_rows(figures: str) -> Callable[[dict[str, Any]], tuple[list[Row], list[str]]]:
    def rows(result: dict[str, Any]) -> tuple[list[Row], list[str]]:
        seconds, ratios, checks = result["seconds"], result["ratios"], result["checks"]
        n = checks.get("selected_tasks") or result["settings"]["tasks_in_file"]
        tokens = result["settings"]["max_tokens"]
        out, notes = [], []
        if "a" in figures:
            out += [
                Row(
                    "a",
                    f"bare LLM.chat script, {n} tasks, max_tokens {tokens}",
                    "s",
                    seconds.get("bare"),
                ),
                Row("a", "plugin cold run, same arguments", "s", seconds.get("cold")),
                Row(
                    "a",
                    "cold / bare (paired per round)",
                    "x",
                    ratios.get("cold/bare"),
                    ("<=", 1.10),
                ),
            ]
            notes.append(
                f"(a) engine arguments of every cold run equal the bare script's: "
                f"{checks.get('engine_args_match_bare')}; bare outputs equal the plugin's "
                f"(greedy), per round: {checks.get('bare_outputs_equal_plugin')}"
            )
            notes.append(
                f"(a) engine arguments {result['engine_args']}, sampling {result['sampling_params']}"
            )
            for kind in ("bare", "cold"):
                run = _median_run(result["runs"][kind])
                notes.append(f"(a) {kind}, median run {run['seconds']:.1f} s: {_phases(run)}")
        if "b" in figures:
            out += [
                Row("b", "plugin warm re-run (all cached)", "s", seconds.get("warm")),
                Row("b", "replay of the cold run's inference.json", "s", seconds.get("replay")),
                Row("b", "cold / warm (times faster)", "x", ratios.get("cold/warm"), (">=", 10)),
                Row("b", "warm / replay", "x", ratios.get("warm/replay"), ("<=", 1.5)),
            ]
        if "e" in figures:
            out += [
                Row("e", "pytest --co -q --model=builtin:tiny, wall", "s", seconds.get("collect")),
                Row(
                    "e",
                    "  of it, pytest's collection phase",
                    "s",
                    result["collection_in_process_s"],
                ),
            ]
        return out, notes

    return rows


def scoring_rows(result: dict[str, Any]) -> tuple[list[Row], list[str]]:
    if "skipped" in result:
        return [Row("c", "scoring (no ../shared/data)", "", None)], [
            f"(c) skipped: {result['skipped']}"
        ]
    files = result["files"]
    out = [
        Row("c", f"scoring {name}", "tasks/s", _scaled(f["wall_s"], lambda s, n=f["tasks"]: n / s))
        for name, f in files.items()
    ]
    largest = max(files, key=lambda name: files[name]["bytes"])
    f = files[largest]
    out.append(
        Row(
            "c",
            f"largest file alone ({largest}, {f['bytes'] // 1000} kB, {f['tasks']} tasks)",
            "s",
            f["wall_s"],
            ("<=", 0.5),
        )
    )
    tracking = result["tracking"]
    notes = [
        f"(c) one core, wall time per pass after a warm-up pass; estimate vs official leaderboard: "
        f"Pearson r {tracking['pearson_r']:.4f}, MAE {tracking['mae']:.4f}"
    ]
    return out, notes


def served_rows(result: dict[str, Any]) -> tuple[list[Row], list[str]]:
    rates = result["tasks_per_s"]
    tokens, n = result["max_tokens"], result["tasks"]
    out = [
        Row(
            "d", f"offline (in-process) pass, {n} tasks x {tokens} tokens", "tasks/s", rates["vllm"]
        ),
        Row("d", "served (--serve) pass, same tasks", "tasks/s", rates["vllm-serve"]),
        Row("d", "served / offline (paired per pass)", "x", result["served/offline"], (">=", 0.8)),
    ]
    starts = ", ".join(f"{k} {v:.1f} s" for k, v in result["start_s"].items())
    notes = [
        f"(d) start + 1 task: {starts}; generations differing: {result['generations_differing']}; "
        f"server: {result['server_arguments']}"
    ]
    return out, notes


def smollm2_rows(result: dict[str, Any]) -> tuple[list[Row], list[str]]:
    n = result["checks"].get("selected_tasks")
    tokens = result["settings"]["max_tokens"]
    name = f"SmolLM2 -m smoke ({n} tasks), max_tokens {tokens}, cold"
    run = _median_run(result["runs"]["cold"])
    notes = [f"(f) median run {run['seconds']:.1f} s: {_phases(run)}"]
    return [Row("f", name, "s", result["seconds"]["cold"])], notes


def preflight_rows(result: dict[str, Any]) -> tuple[list[Row], list[str]]:
    out = [
        Row("g", "preflight, every check (fresh interpreter)", "s", result["preflight_s"]),
        Row("g", "preflight when no engine is needed", "s", result["no_engine_s"]),
    ]
    if "engine_import_cold_s" in result:
        out.append(Row("g", "from vllm import LLM alone", "s", result["engine_import_cold_s"]))
    return out, [f"(g) slowest checks: {result['slowest_checks_s']}"]


def jobs(figures: str, sizes: Sizes) -> list[Job]:
    """The script runs the figures need: (a), (b) and (e) share one ``bench_runs.py``."""
    repeat = f"--repeat {sizes.repeat}"
    eager = "--vllm-arg enforce_eager=true"
    kinds = {"a": ["bare", "cold"], "b": ["cold", "warm", "replay"], "e": ["collect"]}
    selected: list[Job] = []
    if run_figures := "".join(f for f in "abe" if f in figures):
        wanted = ",".join(dict.fromkeys(k for f in run_figures for k in kinds[f]))
        args = f"--kinds {wanted} --model builtin:tiny --max-tokens {sizes.tiny_tokens} {eager}"
        selected.append(
            Job(run_figures, "bench_runs.py", f"{args} {repeat}".split(), runs_rows(run_figures))
        )
    if "c" in figures:
        selected.append(
            Job("c", "bench_scoring.py", f"--runs {sizes.repeat}".split(), scoring_rows)
        )
    if "d" in figures:
        args = f"--model builtin:tiny --max-tokens {sizes.served_tokens} {eager} {repeat}"
        selected.append(Job("d", "bench_served.py", args.split(), served_rows))
    if "f" in figures:
        from pytest_structeval.models import BUILTIN_SMOLLM2, builtin_model

        recipe = builtin_model(BUILTIN_SMOLLM2)
        assert recipe is not None
        args = (
            f"--kinds cold --model {BUILTIN_SMOLLM2} --pytest-arg=-m --pytest-arg=smoke "
            f"--max-tokens {sizes.smollm2_tokens} {eager} {repeat}"
        )
        selected.append(
            Job("f", "bench_runs.py", args.split(), smollm2_rows, skipped=recipe.unavailable())
        )
    if "g" in figures:
        selected.append(
            Job("g", "bench_preflight.py", f"--runs {sizes.repeat}".split(), preflight_rows)
        )
    return selected


HEADER = ["figure", "median", "spread (min-max)", "runs", "bar", "result"]


def table(rows: list[Row]) -> str:
    body = [HEADER, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in body) for i in range(len(HEADER))]
    lines = [
        " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in body
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1 run each, smaller settings")
    parser.add_argument("--only", default=DEFAULT_FIGURES, help="figures, e.g. a,b (default a-f)")
    parser.add_argument("--repeat", type=int, default=None, help="runs per figure (default 5)")
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help=f"where to write the results (default {RESULTS.relative_to(ROOT)} "
        "for a full run, else the work directory)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="scratch (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep every run's scratch directory")
    args = parser.parse_args()
    figures = "".join(sorted(set(args.only.replace(",", "").replace(" ", ""))))
    if unknown := set(figures) - set(ALL_FIGURES):
        parser.error(f"unknown figures {sorted(unknown)}; known: {', '.join(ALL_FIGURES)}")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = Sizes.choose(args.quick, args.repeat)
    full = figures == DEFAULT_FIGURES and not args.quick and sizes.repeat >= 3
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-run-"))
    work.mkdir(parents=True, exist_ok=True)
    results_path = args.results or (RESULTS if full else work / "results.json")

    started = time.perf_counter()
    started_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    info = machine()
    print(f"machine: {describe(info)}")
    print(f"figures {','.join(figures)}, {sizes.repeat} run(s) each; scratch {work}", flush=True)
    if "c" in figures and not SHARED_DATA.is_dir():
        print(f"(c) {SHARED_DATA} is absent: scoring is skipped", flush=True)

    rows: list[Row] = []
    notes: list[str] = []
    raw: dict[str, Any] = {}
    failed = []
    selected = jobs(figures, sizes)
    for job in selected:
        out = work / f"{job.figures}.json"
        command = [sys.executable, str(BENCH / job.script), *job.args, "--json", str(out)]
        if job.script == "bench_runs.py":
            command += ["--workdir", str(work / f"{job.figures}-runs")]
        if job.script == "bench_served.py":
            command += ["--log-dir", str(work / f"{job.figures}-runs")]
        log = work / f"{job.figures}.log"
        if job.skipped:
            print(f"({job.figures}) skipped: {job.skipped}", flush=True)
            rows.append(Row(job.figures, f"{job.script}: skipped", "", None))
            notes.append(f"({job.figures}) skipped: {job.skipped}")
            raw[job.figures] = {"skipped": job.skipped}
            continue
        print(f"({','.join(job.figures)}) {job.script} {' '.join(job.args)} ...", flush=True)
        load_before = load_average()
        job_started = time.perf_counter()
        try:
            timed_process(command, cwd=work, log=log, env=child_env())
            result = read_result(out, f"{job.script}'s result")
            job_rows, job_notes = job.rows(result)
        except (SystemExit, ValueError, KeyError) as error:
            failed.append(job.figures)
            result = {"error": str(error)}
            job_rows, job_notes = [], [f"({job.figures}) FAILED: {str(error)[-600:]}"]
        seconds = time.perf_counter() - job_started
        print(f"    {seconds:.0f} s, log {log}", flush=True)
        raw[job.figures] = {
            "command": command,
            "seconds": seconds,
            "load_average_before": load_before,
            "load_average_after": load_average(),
            "result": result,
        }
        rows += job_rows
        notes += job_notes

    rows.sort(key=lambda row: row.figure)  # stable: each figure's rows stay in their order
    notes.sort(key=lambda note: note[:3])
    total = time.perf_counter() - started
    end_load = load_average()
    print()
    print(table(rows))
    for note in notes:
        print(note)
    print(
        f"total {total:.0f} s ({total / 60:.1f} min); load average at start "
        f"{info['load_average']}, at end {end_load}"
    )
    write_result(
        results_path,
        {
            "command": ["bench/run", *sys.argv[1:]],
            "started_at": started_at,
            "figures": figures,
            "quick": args.quick,
            "repeat": sizes.repeat,
            "sizes": asdict(sizes),
            "machine": info,
            "load_average_at_start": info["load_average"],
            "load_average_at_end": end_load,
            "total_s": total,
            "rows": [row.to_json() for row in rows],
            "table_markdown": markdown(rows),
            "notes": notes,
            "raw": raw,
        },
    )
    print(f"results: {results_path}")
    if not args.keep and not failed:  # the runs' scratch (caches, outputs); logs stay
        for job in selected:
            remove(work / f"{job.figures}-runs")
    if failed:
        print(f"failed: {', '.join(failed)}; logs kept in {work}", file=sys.stderr)
        return 2
    return 1 if any(row.verdict == "FAIL" for row in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
