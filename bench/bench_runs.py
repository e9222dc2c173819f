"""Whole runs of the plugin, each a fresh process timed from start to exit, against the bare
notebook script on the same model: cold, warm, replay and collection.

    python bench/bench_runs.py [--kinds bare,cold,warm,replay,collect] [--model builtin:tiny] \
        [--tasks PATH] [--max-tokens 64] [--vllm-arg enforce_eager=true] [--pytest-arg=-m ...] \
        [--generations PATH] [--repeat 3] [--workdir DIR] [--json PATH]

Kinds of run:

* **bare**: the notebook's way, ``LLM(**engine_args)`` then one
  ``LLM.chat(messages, SamplingParams(**sampling_params))`` over the tasks, with exactly the
  arguments the plugin's backend builds from the same settings (``core.make_backend``; checked
  against the engine arguments each cold run's report.json records). Its outputs are compared
  with the plugin's (greedy decoding: they must match);
* **cold**: ``pytest --model ... --out ... --cache-dir ...`` with an empty generation cache;
* **warm**: the same command again on the cold run's cache: every generation is cached, so no
  engine starts and nothing imports vLLM;
* **replay**: ``pytest --generations=<the cold run's inference.json>`` (or ``--generations``);
* **collect**: ``pytest --co -q --model ...`` (no sampling or engine arguments: with a
  ``--vllm-arg`` the plugin imports vLLM to validate it, seconds more): its wall time, and the
  time pytest spends in its collection phase, measured in that process.

Every run is a fresh process in an empty scratch project directory (snapshots land there, never
in this repository) with its own ``--out`` and ``--cache-dir``; built-in models are built once
before any timing. One untimed warm-up first (``import vllm`` and a collection) fills the page
and bytecode caches, so the first timed run pays no more than the others. The kinds alternate
within each of ``--repeat`` rounds (the bare script first in even rounds, last in odd ones), so
load changes weigh on all alike, and the ratios are taken per round (paired) before their median
and spread.
"""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from common import (
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
from pytest_structeval.core import make_backend
from pytest_structeval.settings import Settings, parse_vllm_args
from pytest_structeval.tasks import BUNDLED_TASKS, TaskSet

KINDS = ("bare", "cold", "warm", "replay", "collect")

# The notebook's way; the timers split its time as the plugin's phase lines do.
BARE_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from vllm import LLM, SamplingParams

    def main():
        spec = json.load(open(sys.argv[1]))
        started = time.perf_counter()
        llm = LLM(**spec["engine_args"])
        engine_start = time.perf_counter() - started
        messages = [[{"role": "user", "content": q}] for q in spec["queries"]]
        started = time.perf_counter()
        outputs = llm.chat(messages, sampling_params=SamplingParams(**spec["sampling_params"]),
                           use_tqdm=True, add_generation_prompt=True)
        generation = time.perf_counter() - started
        json.dump({"outputs": [o.outputs[0].text for o in outputs],
                   "phases": {"engine start": engine_start, "generation": generation}},
                  open(sys.argv[2], "w"))

    if __name__ == "__main__":
        main()
    """
)

# The plugin's phase lines: "structeval: preflight 19 checks 0.1 s", "structeval: engine start
# 13.2 s", "structeval: generation 150 prompts 1.0 s", and the table at the end ("structeval:
# engine release (the part not overlapped) 1.9 s", "structeval: vLLM import (...) 3.4 s").
PHASE_LINE = re.compile(r"structeval: (?P<phase>[A-Za-z][^\d]*?)(?: \d+ [a-z]+)? (?P<s>\d+\.\d+) s$")

# pytest as the command line runs it, plus a timer around its collection phase (argv[1]: where
# to write the timing; the rest: pytest's arguments).
COLLECT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import pytest

    class CollectionTimer:
        seconds = items = None

        @pytest.hookimpl(wrapper=True)
        def pytest_collection(self, session):
            started = time.perf_counter()
            try:
                return (yield)
            finally:
                self.seconds = time.perf_counter() - started
                self.items = len(session.items)

    timer = CollectionTimer()
    code = pytest.main(["-p", "no:cacheprovider", *sys.argv[2:]], plugins=[timer])
    with open(sys.argv[1], "w") as handle:
        json.dump({"collection_s": timer.seconds, "items": timer.items}, handle)
    sys.exit(code)
    """
)

# pytest exits 1 when tasks score below the bar (the tiny model fails them all); a collection
# exits 0.
PLUGIN_OK = (0, 1)


class Runs:
    """The timed runs of one benchmark, in one scratch directory."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scratch = Scratch(args.workdir, "bench-runs-")
        self.env = child_env()
        self.runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in args.kinds}
        self.commands: dict[str, list[str]] = {}
        self.checks: dict[str, Any] = {}

    # -- one run of each kind ---------------------------------------------------------------

    def _plugin_args(self, out: Path, cache: Path, *, generation: bool = True) -> list[str]:
        """The plugin's command line; ``generation=False`` leaves out the sampling and engine
        arguments (a collection as the user types it: with a ``--vllm-arg`` the plugin imports
        vLLM to validate it, even for ``--co``)."""
        args = self.args
        sampling = [
            f"--max-tokens={args.max_tokens}",
            *(f"--vllm-arg={item}" for item in args.vllm_arg),
        ]
        return [
            f"--model={args.model}",
            *([f"--tasks={args.tasks}"] if args.tasks else []),
            f"--out={out}",
            f"--cache-dir={cache}",
            *(sampling if generation else []),
            *args.pytest_arg,
        ]

    def _timed(self, kind: str, command: list[str], cwd: Path, ok=PLUGIN_OK) -> dict[str, Any]:
        self.commands.setdefault(kind, command)
        log = cwd.parent / f"{cwd.name}.log"
        seconds = timed_process(command, cwd=cwd, log=log, ok=ok, env=self.env)
        return {"seconds": seconds, "log": str(log)}

    def bare(self, spec: Path) -> dict[str, Any]:
        project = self.scratch.new("bare")
        outputs = project / "outputs.json"
        command = [sys.executable, str(self.script), str(spec), str(outputs)]
        run = self._timed("bare", command, project, ok=(0,))
        run.update(outputs=str(outputs), phases=read_result(outputs, "the bare outputs")["phases"])
        return run

    def plugin(self, kind: str, cache: Path) -> dict[str, Any]:
        """A cold (empty ``cache``) or warm (the cold run's ``cache``) plugin run."""
        project, out = self.scratch.new(kind), self.scratch.new(f"{kind}-out")
        run = self._timed(kind, pytest_command(*self._plugin_args(out, cache)), project)
        meta = read_result(out / "report.json", f"the {kind} run's report")["meta"]
        lines = Path(run["log"]).read_text(errors="replace").splitlines()
        run.update(
            out=str(out),
            phases={m["phase"]: float(m["s"]) for m in map(PHASE_LINE.search, lines) if m},
            timings=meta.get("timings"),
            generated=meta.get("generated"),
            cache_hits=meta.get("cache_hits"),
            engine_builds=meta.get("engine_builds"),
            engine_args=meta.get("engine_args"),
        )
        return run

    def replay(self, generations: Path) -> dict[str, Any]:
        project, out = self.scratch.new("replay"), self.scratch.new("replay-out")
        tasks = [f"--tasks={self.args.tasks}"] if self.args.tasks else []
        command = pytest_command(*tasks, f"--generations={generations}", f"--out={out}")
        run = self._timed("replay", command, project)
        read_result(out / "report.json", "the replay's report")
        return run

    def collect(self, label: str = "collect") -> dict[str, Any]:
        project, out = self.scratch.new(label), self.scratch.new(f"{label}-out")
        timing = project.parent / f"{project.name}.json"
        cache = self.scratch.cache(f"{label}-cache")
        args = ["--co", "-q", *self._plugin_args(out, cache, generation=False)]
        command = [sys.executable, "-c", COLLECT_SCRIPT, str(timing), *args]
        run = self._timed(label, command, project, ok=(0,))
        run.update(read_result(timing, "the collection timing"))
        return run

    # -- the rounds -------------------------------------------------------------------------

    def prepare(self) -> None:
        """Engine and sampling arguments as the plugin's backend builds them (this also builds
        a built-in model, outside every timing), the bare script, and the untimed warm-up."""
        args = self.args
        self.tasks = list(TaskSet.load(args.tasks or BUNDLED_TASKS))
        self.script = self.scratch.root / "bare.py"
        self.script.write_text(BARE_SCRIPT)
        self.spec = self.scratch.root / "bare.json"
        self.engine_args: dict[str, Any] | None = None
        self.sampling_params: dict[str, Any] | None = None
        if set(args.kinds) & {"bare", "cold", "warm", "collect"}:
            settings = Settings.of(
                model=args.model,
                tasks=args.tasks or BUNDLED_TASKS,
                max_tokens=args.max_tokens,
                vllm_args=parse_vllm_args(args.vllm_arg),
                enabled=False,  # the cache section
            )
            backend = make_backend(settings)  # never started: its arguments only
            self.engine_args = dict(backend.engine_args)
            self.sampling_params = dict(backend.sampling_params)
            write_result(
                self.spec,
                {
                    "engine_args": self.engine_args,
                    "sampling_params": self.sampling_params,
                    "queries": [task.query for task in self.tasks],
                },
            )
        warmups = {}
        if set(args.kinds) & {"bare", "cold"}:
            warm_import = [sys.executable, "-c", "import vllm"]
            project = self.scratch.new("warmup-import")
            warmups["import vllm"] = timed_process(
                warm_import, cwd=project, log=project.with_suffix(".log"), env=self.env
            )
        if self.engine_args is not None:
            warmups["collection"] = self.collect("warmup-collect")["seconds"]
        self.warmups = warmups

    def round(self, index: int) -> None:
        """One run of each kind; the bare script goes first in even rounds and last in odd
        ones, so that neither side always follows the other's engine shutdown."""
        kinds = self.args.kinds
        if "bare" in kinds and index % 2 == 0:
            self.runs["bare"].append({"round": index, **self.bare(self.spec)})
        cold = None
        if {"cold", "warm"} & set(kinds) or ("replay" in kinds and not self.args.generations):
            cache = self.scratch.cache("cold-cache")
            cold = {"round": index, **self.plugin("cold", cache)}
            self.runs.setdefault("cold", []).append(cold)
            if "warm" in kinds:
                self.runs["warm"].append({"round": index, **self.plugin("warm", cache)})
        if "replay" in kinds:
            generations = self.args.generations or Path(cold["out"]) / "inference.json"
            self.runs["replay"].append({"round": index, **self.replay(generations)})
        if "collect" in kinds:
            self.runs["collect"].append({"round": index, **self.collect()})
        if "bare" in kinds and index % 2 == 1:
            self.runs["bare"].append({"round": index, **self.bare(self.spec)})

    # -- checks and results -----------------------------------------------------------------

    def _check(self) -> None:
        n = None  # the selected tasks: all, or a subset (``-m smoke``)
        for run in self.runs.get("cold", []):
            if run["cache_hits"] or not run["generated"]:
                raise BenchmarkError(f"cold run {run['log']} was not cold: {run}")
            n = run["generated"]
            if self.engine_args is not None:
                expected = {k: v for k, v in self.engine_args.items() if k != "model"}
                used = {k: v for k, v in (run["engine_args"] or {}).items() if k != "model"}
                self.checks.setdefault("engine_args_match_bare", True)
                self.checks["engine_args_match_bare"] &= expected == used
        for run in self.runs.get("warm", []):
            if run["cache_hits"] != n or run["generated"] or run["engine_builds"]:
                raise BenchmarkError(f"warm run {run['log']} was not served from the cache: {run}")
        self.checks["selected_tasks"] = n
        pairs = zip(self.runs.get("bare", []), self.runs.get("cold", []), strict=False)
        for bare, cold in pairs:
            texts = read_result(Path(bare["outputs"]), "the bare script's outputs")["outputs"]
            plugin = read_result(Path(cold["out"]) / "inference.json", "inference.json")
            same = texts == [g["generation"] for g in plugin] if len(texts) == n else None
            self.checks.setdefault("bare_outputs_equal_plugin", []).append(same)

    def result(self) -> dict[str, Any]:
        self._check()
        seconds = {k: summary([r["seconds"] for r in v]) for k, v in self.runs.items() if v}

        def paired(top: str, bottom: str) -> dict[str, Any] | None:
            pairs = zip(self.runs.get(top, []), self.runs.get(bottom, []), strict=False)
            ratios = [a["seconds"] / b["seconds"] for a, b in pairs]
            return summary(ratios) if ratios else None

        ratios = {
            "cold/bare": paired("cold", "bare"),
            "cold/warm": paired("cold", "warm"),
            "warm/replay": paired("warm", "replay"),
        }
        collect = self.runs.get("collect", [])
        return {
            "settings": {
                "model": self.args.model,
                "tasks": str(self.args.tasks or BUNDLED_TASKS),
                "tasks_in_file": len(self.tasks),
                "max_tokens": self.args.max_tokens,
                "vllm_args": self.args.vllm_arg,
                "pytest_args": self.args.pytest_arg,
                "generations": str(self.args.generations) if self.args.generations else None,
                "repeat": self.args.repeat,
                "kinds": self.args.kinds,
                "VLLM_CPU_KVCACHE_SPACE": self.env.get("VLLM_CPU_KVCACHE_SPACE"),
            },
            "engine_args": self.engine_args,
            "sampling_params": self.sampling_params,
            "commands": self.commands,
            "warmup_s": self.warmups,
            "seconds": seconds,
            "ratios": {k: v for k, v in ratios.items() if v},
            "collection_in_process_s": (
                summary([r["collection_s"] for r in collect]) if collect else None
            ),
            "checks": self.checks,
            "runs": self.runs,
            "workdir": str(self.scratch.root),
        }


def _print(result: dict[str, Any]) -> None:
    settings = result["settings"]
    print(
        f"model {settings['model']}, {result['checks'].get('selected_tasks') or settings['tasks_in_file']}"
        f" tasks, max_tokens {settings['max_tokens']}, {settings['repeat']} round(s); "
        f"runs in {result['workdir']}"
    )
    for kind, s in result["seconds"].items():
        values = ", ".join(f"{v:.2f}" for v in s["values"])
        print(f"{kind:8s} {s['median']:8.2f} s   ({values})")
    for name, s in result["ratios"].items():
        print(f"{name:12s} {s['median']:7.3f}   ({s['min']:.3f}-{s['max']:.3f})")
    if result["collection_in_process_s"]:
        print(f"collection in-process {result['collection_in_process_s']['median']:.3f} s")
    print(f"checks: {result['checks']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="bare,cold,warm,replay", help=f"of {','.join(KINDS)}")
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--tasks", type=Path, default=None, help="default: the bundled 150")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--vllm-arg", action="append", default=None, help="default: eager")
    parser.add_argument("--pytest-arg", action="append", default=[], help="e.g. --pytest-arg=-m")
    parser.add_argument("--generations", type=Path, default=None, help="replay this file")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    args.kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    if unknown := set(args.kinds) - set(KINDS):
        parser.error(f"unknown kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    if "bare" in args.kinds and args.pytest_arg:
        parser.error("bare runs every task of --tasks: no --pytest-arg selection with it")
    if args.vllm_arg is None:
        args.vllm_arg = ["enforce_eager=true"]
    if args.tasks:
        args.tasks = args.tasks.resolve()
    prepare_environment()
    result = run_rounds(Runs(args), args.repeat)
    _print(result)
    write_result(args.json, result)


if __name__ == "__main__":
    main()
