"""The project's own suite as ``.ci/run`` runs it, and where its CPU goes: which processes
import vLLM, what they cost, and the floor that the CPU work puts under the wall time on this
machine's cores (issue 19).

    python bench/bench_suite.py [--pytest-arg ARG ...] [--json PATH]

Runs ``python -m pytest testing -n 2 --dist loadfile`` (or the ``--pytest-arg`` list instead of
``testing -n 2 --dist loadfile``) from the repository root, with ``VLLM_CPU_KVCACHE_SPACE``
defaulting to 2 as in ``.ci/run``. A ``sitecustomize`` put first on ``PYTHONPATH`` records, in
every Python process the suite starts (pytest runs, vLLM's spawned engine cores and workers,
``vllm serve``, probes), its start and, at exit, its CPU seconds and whether it imported vLLM.
A process that ends without running exit handlers (killed, ``os._exit``) is counted with no
CPU figure; a test that puts its own sitecustomize first on ``PYTHONPATH`` hides its engine's
processes from the count. The whole suite's CPU comes from the kernel instead
(``RUSAGE_CHILDREN``: every descendant that was waited for).

The floor: CPU seconds divided by the cores. No scheduling makes the suite shorter than that;
what makes it shorter is less CPU work, and the report says how much of that work is
importing vLLM again in a fresh process (the cost of one such import is measured here too).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from common import DEFAULT_KVCACHE_GIB, ROOT, describe, machine, write_result

LOG_VARIABLE = "STRUCTEVAL_BENCH_PROCESS_LOG"
DEFAULT_ARGS = ("testing", "-n", "2", "--dist", "loadfile")
VLLM_IMPORT = "import vllm.v1.engine.core, vllm.v1.worker.cpu_worker"

# One line at start, one at exit; a spawned child of multiprocessing says so in its argv.
RECORDER = f'''
import atexit, os, sys

_log = os.environ.get("{LOG_VARIABLE}")
if _log:
    def _record(event):
        times = os.times()
        spawned = int("--multiprocessing-fork" in sys.argv)
        line = (
            f"{{event}} {{os.getpid()}} spawned={{spawned}} vllm={{int('vllm' in sys.modules)}} "
            f"cpu={{times.user + times.system:.3f}}\\n"
        )
        with open(_log, "a") as handle:
            handle.write(line)

    _record("start")
    atexit.register(_record, "exit")
'''

LINE = re.compile(r"(start|exit) (\d+) spawned=(\d) vllm=(\d) cpu=([\d.]+)")


def read_processes(log: Path) -> dict[str, Any]:
    """The processes of the log: counts and CPU seconds by kind."""
    starts: dict[str, bool] = {}
    exits: dict[str, tuple[bool, float]] = {}
    for line in log.read_text().splitlines():
        match = LINE.match(line)
        if match is None:
            continue
        event, pid, spawned, vllm, cpu = match.groups()
        if event == "start":
            starts[pid] = spawned == "1"
        else:
            exits[pid] = (vllm == "1", float(cpu))
    with_vllm = [cpu for pid, (vllm, cpu) in exits.items() if vllm]
    without = [cpu for pid, (vllm, cpu) in exits.items() if not vllm]
    spawned = [pid for pid, flag in starts.items() if flag]
    return {
        "started": len(starts),
        "spawned_by_multiprocessing": len(spawned),
        "spawned_with_vllm": sum(1 for pid in spawned if exits.get(pid, (False, 0))[0]),
        "spawned_without_exit_record": sum(1 for pid in spawned if pid not in exits),
        "without_exit_record": sum(1 for pid in starts if pid not in exits),
        "with_vllm": len(with_vllm),
        "with_vllm_cpu_s": round(sum(with_vllm), 1),
        "without_vllm": len(without),
        "without_vllm_cpu_s": round(sum(without), 1),
    }


def vllm_import_cpu(runs: int) -> list[float]:
    """CPU seconds of a fresh interpreter that imports what an engine process imports."""
    values = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", VLLM_IMPORT], check=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        values.append(round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2))
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pytest-arg", action="append", default=None, metavar="ARG")
    parser.add_argument("--import-runs", type=int, default=3, metavar="N")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = parser.parse_args(argv)
    pytest_args = tuple(args.pytest_arg or DEFAULT_ARGS)
    info = machine()
    print(f"machine: {describe(info)}", flush=True)
    cores = info["cores"]

    with tempfile.TemporaryDirectory(prefix="bench-suite-") as scratch:
        site = Path(scratch) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(textwrap.dedent(RECORDER), encoding="utf-8")
        log = Path(scratch) / "processes.log"
        env = dict(os.environ)
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_KVCACHE_GIB)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        env[LOG_VARIABLE] = str(log)
        command = [sys.executable, "-m", "pytest", *pytest_args, "-ra"]
        print(f"running: {' '.join(command[1:])}", flush=True)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        processes = read_processes(log)
    summary_line = next(
        (line for line in reversed(done.stdout.splitlines()) if " in " in line and "=" in line),
        done.stdout.splitlines()[-1] if done.stdout else "",
    )
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    imports = vllm_import_cpu(args.import_runs)
    per_import = statistics.median(imports)
    importing = processes["with_vllm"] + processes["spawned_without_exit_record"]
    result = {
        "machine": info,
        "command": command[1:],
        "exit_code": done.returncode,
        "summary": summary_line.strip("= "),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "cores": cores,
        "busy": round(cpu / (cores * wall), 3),
        "floor_s": round(cpu / cores, 1),
        "processes": processes,
        "vllm_import_cpu_s": {"median": per_import, "values": imports},
        "processes_importing_vllm": importing,
        "vllm_imports_cpu_s": round(importing * per_import, 1),
    }
    print(
        f"{result['summary']}\n"
        f"wall {wall:.1f} s; CPU {cpu:.1f} s on {cores} cores (busy {result['busy']:.0%}); "
        f"floor {result['floor_s']:.1f} s\n"
        f"processes: {processes['started']} started, {processes['spawned_by_multiprocessing']} "
        f"spawned by multiprocessing, {processes['without_exit_record']} ended without exit "
        f"handlers\n"
        f"  with vLLM imported at exit: {processes['with_vllm']}, "
        f"{processes['with_vllm_cpu_s']:.1f} CPU s; without: {processes['without_vllm']}, "
        f"{processes['without_vllm_cpu_s']:.1f} CPU s\n"
        f"vLLM's import in a fresh interpreter: {per_import:.2f} CPU s (runs {imports}); "
        f"{importing} processes import it (those with it at exit, and spawned ones with no "
        f"record): about {result['vllm_imports_cpu_s']:.0f} CPU s of imports",
        flush=True,
    )
    write_result(args.json, result)
    return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
