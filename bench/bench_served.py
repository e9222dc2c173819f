"""Served against offline throughput on the same model, in one run.

    .venv/bin/python bench/bench_served.py [--model builtin:tiny] [--max-tokens 512] \
        [--repeat 5] [--vllm-arg enforce_eager=true] [--serve-arg=--max-num-seqs=256] \
        [--json PATH]

Both backends are the plugin's own, with the same ``Settings``: the in-process engine
(``VllmBackend``) and the session's own server (``VllmServeBackend``: ``vllm serve`` on
127.0.0.1 driven through the OpenAI client with its default concurrency). Both start first
(start-up times reported apart), then timed passes over the same tasks alternate offline /
served, ``--repeat`` times each, so a machine that gets busier or quieter meanwhile weighs on
both alike. No generation cache: every pass generates everything. Throughput is tasks per second
of one pass (all tasks hit ``max_tokens`` with a random model, so tokens per second are that
times ``max_tokens``); the report gives each side's median and spread (min-max), the ratio
served / offline of each pair of passes (median and spread; target: served >= 0.8 x offline)
and whether the generations are identical. ``--json PATH`` writes it all (``bench/run`` reads
it).

On a shared machine wall time swings with everyone else's load, so each pass also counts the CPU
seconds spent by this process (the client, or the in-process engine's front end) and by its
child processes (the engine core and worker, or the server's API process, engine core and
worker): a cost that other users' load moves far less.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_KVCACHE_GIB, describe, load_average, machine, summary, write_result

from pytest_structeval.backends.base import Backend
from pytest_structeval.backends.served import VllmServeBackend
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.models import resolve_model
from pytest_structeval.settings import Settings, parse_vllm_args
from pytest_structeval.tasks import BUNDLED_TASKS, Task, TaskSet


def cpu_seconds() -> dict[int, float]:
    """CPU seconds (user + system) so far of this process and every descendant."""
    import psutil  # a vLLM dependency: present wherever this benchmark can run

    me = psutil.Process()
    seconds = {}
    for process in [me, *me.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        seconds[process.pid] = times.user + times.system
    return seconds


def timed_pass(backend: Backend, tasks: list[Task]) -> tuple[float, float, dict[str, str]]:
    """Wall seconds, CPU seconds of this process tree, and the generations of one pass."""
    cpu_before = cpu_seconds()
    started = time.perf_counter()
    generations = backend.generate(tasks)
    seconds = time.perf_counter() - started
    cpu_after = cpu_seconds()
    if backend.failures:
        sys.exit(f"{backend.name}: {len(backend.failures)} task(s) failed: {backend.failures}")
    cpu = sum(t - cpu_before.get(pid, 0.0) for pid, t in cpu_after.items())
    return seconds, cpu, {task_id: g.text for task_id, g in generations.items()}


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--tasks", type=Path, default=BUNDLED_TASKS)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--vllm-arg", action="append", default=None, help="default: eager")
    parser.add_argument("--serve-arg", action="append", default=[])
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--log-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args()
    if args.vllm_arg is None:
        args.vllm_arg = ["enforce_eager=true"]

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_KVCACHE_GIB)
    tasks = list(TaskSet.load(args.tasks))
    config = Settings.of(
        model=args.model,
        max_tokens=args.max_tokens,
        vllm_args=parse_vllm_args(args.vllm_arg),
        serve=True,
        serve_args=tuple(args.serve_arg),
        concurrency=args.concurrency,
    )
    model_path = resolve_model(args.model)  # build builtin:tiny outside the timings
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="bench-served-"))
    info = machine()
    print(f"machine: {describe(info)}")
    print(f"model {args.model}, {len(tasks)} tasks, max_tokens {args.max_tokens}, logs {log_dir}")

    offline = VllmBackend(config.engine, config.sampling, model_path=model_path, progress=False)
    served = VllmServeBackend(
        config.engine,
        config.sampling,
        config.serving,
        log_dir=log_dir,
        model_path=model_path,
        progress=False,
    )
    names = (offline.name, served.name)
    try:
        starts = {}
        for backend in (offline, served):
            started = time.perf_counter()
            backend.generate(tasks[:1])  # start the engine / server (and warm it up)
            starts[backend.name] = time.perf_counter() - started
        times: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        outputs: dict[str, dict[str, str]] = {}
        for _ in range(args.repeat):
            for backend in (offline, served):
                seconds, cpu_used, outputs[backend.name] = timed_pass(backend, tasks)
                times[backend.name].append(seconds)
                cpu[backend.name].append(cpu_used)
        server_command = " ".join(served.server.command[3:])
        concurrency = served.meta()["concurrency"]
    finally:
        offline.close()
        served.close()

    rates = {name: [len(tasks) / s for s in values] for name, values in times.items()}
    # Passes alternate offline / served: each pair saw the same load, so the ratio is per pair.
    ratios = [s / o for o, s in zip(rates[offline.name], rates[served.name], strict=True)]
    differing = sum(
        outputs[offline.name][k] != outputs[served.name].get(k) for k in outputs[offline.name]
    )
    result: dict[str, Any] = {
        "machine": info,
        "model": args.model,
        "tasks": len(tasks),
        "max_tokens": args.max_tokens,
        "vllm_args": args.vllm_arg,
        "server_arguments": server_command,
        "concurrency": concurrency,
        "start_s": starts,
        "pass_s": {name: summary(values) for name, values in times.items()},
        "tasks_per_s": {name: summary(values) for name, values in rates.items()},
        "pass_cpu_s": {name: summary(values) for name, values in cpu.items()},
        "served/offline": summary(ratios),
        "generations_differing": differing,
        "load_average_at_end": load_average(),
        "log_dir": str(log_dir),
    }

    print(f"server arguments: {server_command}")
    print(f"concurrency: {concurrency}")
    for name, seconds in starts.items():
        print(f"start + 1 task, {name}: {seconds:.1f} s")
    for name, values in times.items():
        print(f"pass seconds, {name}: {spread(values)}; tasks/s {spread(rates[name])}")
        print(f"pass CPU seconds, {name}: {spread(cpu[name])}")
    print(f"served / offline throughput (per pair): {spread(ratios)} (target >= 0.80)")
    cost = statistics.median(cpu[offline.name]) / statistics.median(cpu[served.name])
    print(f"offline / served CPU seconds per pass (medians): {cost:.2f}")
    print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(
        f"generations identical: {not differing}" + (f" ({differing} differ)" if differing else "")
    )
    write_result(args.json, result)


if __name__ == "__main__":
    main()
