"""A sweep against separate runs: N LoRA adapters of one base model evaluated in one session
(``--adapter a0=... --adapter a1=...``: one engine, one batch) against N sessions of one
``--adapter`` each, on the same tasks and ``max_tokens`` (issue 23; the goal is four adapters in
at most half the time of four runs).

    python bench/bench_sweep.py [--model builtin:tiny] [--adapters 4] [--tasks PATH] \
        [--max-tokens 32] [--vllm-arg enforce_eager=true] [--pytest-arg=-m --pytest-arg=smoke] \
        [--repeat 1] [--workdir DIR] [--json PATH]

Every run is a fresh ``python -m pytest`` process in an empty scratch project with its own
``--out`` and an empty ``--cache-dir``, timed from start to exit. The adapters (rank 8 on
q_proj and v_proj, a different seed each: ``testing/support.build_lora_adapter``, the tests'
own) and a built-in model are built once before any timing; one untimed ``import vllm`` warms
the page and bytecode caches. In each round the sweep goes first in even rounds and last in odd
ones. Checked: each separate run built one engine, the sweep one over all its runs, nothing came
from a cache, and each adapter's inference.json in the sweep equals its separate run's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    BenchmarkError,
    Scratch,
    child_env,
    pytest_command,
    read_result,
    run_rounds,
    summary,
    timed_process,
    write_result,
)

from pytest_structeval.backends.platform import prepare_environment
from pytest_structeval.models import resolve_model

# The adapters are the ones the tests build (testing/support.py is not a package module).
sys.path.insert(0, str(ROOT / "testing"))
from support import build_lora_adapter

# pytest exits 1 when tasks score below the bar (the tiny model fails them all).
PLUGIN_OK = (0, 1)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scratch = Scratch(args.workdir, "bench-sweep-")
        self.env = child_env()
        self.runs: dict[str, list[dict[str, Any]]] = {"separate": [], "sweep": []}
        self.commands: dict[str, list[str]] = {}
        self.checks: dict[str, Any] = {}

    def prepare(self) -> None:
        model = Path(resolve_model(self.args.model))  # a built-in model is built here, untimed
        folder = self.scratch.new("adapters")
        self.adapters = {
            f"a{i}": build_lora_adapter(model, folder / f"a{i}", seed=i)
            for i in range(self.args.adapters)
        }
        project = self.scratch.new("warmup-import")
        self.warmup_s = timed_process(
            [sys.executable, "-c", "import vllm"],
            cwd=project,
            log=project.with_suffix(".log"),
            env=self.env,
        )

    def _session(self, label: str, adapters: list[str]) -> dict[str, Any]:
        args = self.args
        project, out = self.scratch.new(label), self.scratch.new(f"{label}-out")
        cache = self.scratch.cache(f"{label}-cache")
        command = pytest_command(
            f"--model={args.model}",
            *(f"--adapter={a}" for a in adapters),
            *([f"--tasks={args.tasks}"] if args.tasks else []),
            f"--out={out}",
            f"--cache-dir={cache}",
            f"--max-tokens={args.max_tokens}",
            *(f"--vllm-arg={item}" for item in args.vllm_arg),
            *args.pytest_arg,
        )
        self.commands.setdefault(label, command)
        log = project.parent / f"{project.name}.log"
        seconds = timed_process(command, cwd=project, log=log, ok=PLUGIN_OK, env=self.env)
        return {"seconds": seconds, "log": str(log), "out": str(out)}

    def separate(self, index: int) -> None:
        runs = {}
        for name, path in self.adapters.items():
            run = self._session(f"separate-{name}", [str(path)])
            run["meta"] = _meta(read_result(Path(run["out"]) / "report.json", "a run's report"))
            runs[name] = run
        self.runs["separate"].append(
            {"round": index, "seconds": sum(r["seconds"] for r in runs.values()), "runs": runs}
        )

    def sweep(self, index: int) -> None:
        run = self._session("sweep", [f"{n}={p}" for n, p in self.adapters.items()])
        out = Path(run["out"])
        run["metas"] = {
            n: _meta(read_result(out / n / "report.json", f"the sweep's {n} report"))
            for n in self.adapters
        }
        self.runs["sweep"].append({"round": index, **run})

    def round(self, index: int) -> None:
        if index % 2 == 0:
            self.sweep(index)
        self.separate(index)
        if index % 2 == 1:
            self.sweep(index)

    def _check(self) -> None:
        tasks = None
        for entry in self.runs["separate"]:
            for run in entry["runs"].values():
                meta = run["meta"]
                if meta["engine_builds"] != 1 or meta["cache_hits"] or not meta["generated"]:
                    raise BenchmarkError(f"separate run {run['log']} was not one cold engine")
                tasks = meta["generated"]
        for run in self.runs["sweep"]:
            metas = run["metas"].values()
            if sum(m["engine_builds"] for m in metas) != 1 or any(
                m["cache_hits"] or m["generated"] != tasks for m in metas
            ):
                raise BenchmarkError(f"sweep {run['log']} was not one cold engine: {metas}")
        self.checks["selected_tasks"] = tasks
        same = []
        for sweep, separate in zip(self.runs["sweep"], self.runs["separate"], strict=True):
            for name, run in separate["runs"].items():
                alone = read_result(Path(run["out"]) / "inference.json", "inference.json")
                swept = read_result(Path(sweep["out"]) / name / "inference.json", "inference.json")
                same.append(alone == swept)
        self.checks["sweep_outputs_equal_separate"] = all(same)

    def result(self) -> dict[str, Any]:
        self._check()
        pairs = zip(self.runs["sweep"], self.runs["separate"], strict=True)
        return {
            "settings": {
                "model": self.args.model,
                "adapters": self.args.adapters,
                "tasks": str(self.args.tasks) if self.args.tasks else "bundled",
                "max_tokens": self.args.max_tokens,
                "vllm_args": self.args.vllm_arg,
                "pytest_args": self.args.pytest_arg,
                "repeat": self.args.repeat,
                "VLLM_CPU_KVCACHE_SPACE": self.env.get("VLLM_CPU_KVCACHE_SPACE"),
            },
            "commands": self.commands,
            "warmup_s": self.warmup_s,
            "seconds": {k: summary([r["seconds"] for r in v]) for k, v in self.runs.items()},
            "sweep/separate": summary([s["seconds"] / p["seconds"] for s, p in pairs]),
            "checks": self.checks,
            "runs": self.runs,
            "workdir": str(self.scratch.root),
        }


def _meta(report: dict[str, Any]) -> dict[str, Any]:
    meta = report["meta"]
    return {
        key: meta.get(key)
        for key in ("engine_builds", "generated", "cache_hits", "timings", "adapter")
    }


def _print(result: dict[str, Any]) -> None:
    s = result["settings"]
    print(
        f"model {s['model']}, {s['adapters']} adapters, {result['checks']['selected_tasks']} "
        f"tasks, max_tokens {s['max_tokens']}, {s['repeat']} round(s); runs in "
        f"{result['workdir']}"
    )
    print(f"{'session':34s} {'median s':>9s}   values")
    labels = {
        "separate": f"{s['adapters']} separate runs (sum)",
        "sweep": f"1 sweep of {s['adapters']} adapters",
    }
    for kind, values in result["seconds"].items():
        listed = ", ".join(f"{v:.1f}" for v in values["values"])
        print(f"{labels[kind]:34s} {values['median']:9.1f}   ({listed})")
    ratio = result["sweep/separate"]
    print(f"{'sweep / separate':34s} {ratio['median']:9.3f}   ({ratio['min']:.3f}-{ratio['max']:.3f})")
    print(f"checks: {result['checks']}")
    print(
        json.dumps(
            {
                "separate_s": result["seconds"]["separate"]["median"],
                "sweep_s": result["seconds"]["sweep"]["median"],
                "sweep/separate": ratio["median"],
                "load_average_at_end": result["load_average_at_end"],
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--tasks", type=Path, default=None, help="default: the bundled 150")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--vllm-arg", action="append", default=None, help="default: eager")
    parser.add_argument(
        "--pytest-arg", action="append", default=None, help="default: -m smoke (19 tasks)"
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    if args.adapters < 2:
        parser.error("--adapters: a sweep needs at least 2")
    if args.vllm_arg is None:
        args.vllm_arg = ["enforce_eager=true"]
    if args.pytest_arg is None:
        args.pytest_arg = ["-m", "smoke"]
    if args.tasks:
        args.tasks = args.tasks.resolve()
    prepare_environment()
    result = run_rounds(Bench(args), args.repeat)
    _print(result)
    write_result(args.json, result)


if __name__ == "__main__":
    main()
