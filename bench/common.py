"""What every benchmark script shares: the machine, medians with their spread, fresh processes
in empty scratch directories, and the ``--json`` result file that ``bench/run`` reads.

Imported by the scripts beside it (``python bench/bench_x.py`` puts ``bench/`` on sys.path).
Nothing here imports vLLM or torch: versions come from package metadata.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "plugin"
SHARED_DATA = ROOT.parent / "shared" / "data"
if str(PLUGIN_DIR) not in sys.path:
    sys.path.insert(0, str(PLUGIN_DIR))  # this checkout's plugin, not whatever is installed

from pytest_structeval import __version__  # noqa: E402
from pytest_structeval.backends.platform import library_versions, visible_gpus  # noqa: E402
from pytest_structeval.files import cache_root, dump_json, read_json, write_atomic  # noqa: E402

# vLLM's CPU build sizes its KV cache from this (GiB); every engine in a benchmark gets the
# same value, and results.json records it.
DEFAULT_KVCACHE_GIB = "2"


def summary(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max and the raw values: what every figure reports."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
        "values": list(values),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} ({platform.platform()})"
    except OSError:
        pass
    return platform.platform()


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine() -> dict[str, Any]:
    """The machine and the software the figures were measured with."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        gpus = visible_gpus()
    except Exception as error:  # a broken driver is a fact about the machine, not a failure
        gpus = [f"unknown: {error}"]
    return {
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cores": cores,
        "memory_gib": _memory_gib(),
        "os": _os_name(),
        "python": platform.python_version(),
        **library_versions(),
        "pytest-structeval": __version__,
        "gpus": gpus,
        "load_average": load_average(),
    }


def describe(info: dict[str, Any]) -> str:
    """One line for a report header."""
    return (
        f"{info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, {info['os']}, "
        f"Python {info['python']}, vllm {info['vllm']}, torch {info['torch']}, "
        f"transformers {info['transformers']}, GPUs {info['gpus'] or 'none'}, "
        f"load average {info['load_average']}"
    )


def child_env() -> dict[str, str]:
    """The environment of every timed process: this checkout's plugin first on the path, the
    same KV cache size for every engine, and bytecode caching as on a user's machine (a
    ``PYTHONDONTWRITEBYTECODE`` in this shell would make each run recompile and
    assertion-rewrite every module pytest loads: a cost no user pays)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PLUGIN_DIR), env.get("PYTHONPATH")]))
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", DEFAULT_KVCACHE_GIB)
    env.setdefault("HF_HUB_OFFLINE", "1")  # local models only: nothing to fetch
    return env


class Scratch:
    """A directory for one benchmark's runs (a temporary one unless given), with a fresh empty
    project, output and cache directory per run: never this repository, never the user's
    cache. Built-in models are linked in from the user's cache (built there once, outside any
    timing), so that a fresh cache does not mean a fresh model build."""

    def __init__(self, root: Path | None, prefix: str) -> None:
        self.root = root or Path(tempfile.mkdtemp(prefix=prefix))
        self.root.mkdir(parents=True, exist_ok=True)
        self._count = 0

    def new(self, label: str) -> Path:
        """An empty directory ``<root>/<n>-<label>``."""
        self._count += 1
        path = self.root / f"{self._count:02d}-{label}"
        path.mkdir(parents=True)
        return path

    def cache(self, label: str) -> Path:
        """A fresh cache directory (no generations) that sees the already built models."""
        path = self.new(label)
        models = cache_root() / "models"
        models.mkdir(parents=True, exist_ok=True)
        (path / "models").symlink_to(models, target_is_directory=True)
        return path


def pytest_command(*args: str) -> list[str]:
    """``python -m pytest`` as a user runs the plugin, without pytest's own cache directory."""
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]


def timed_process(
    command: Sequence[str],
    *,
    cwd: Path,
    log: Path,
    ok: Sequence[int] = (0,),
    env: dict[str, str] | None = None,
) -> float:
    """Wall seconds of ``command`` from start to exit, its output in ``log``; an exit code
    outside ``ok`` stops the benchmark with the log's end."""
    started = time.perf_counter()
    with log.open("w") as handle:
        done = subprocess.run(
            list(command), cwd=cwd, env=env or child_env(), stdout=handle, stderr=subprocess.STDOUT
        )
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"{' '.join(command[:6])} ... exited {done.returncode}; {log}:\n{tail}")
    return seconds


def write_result(path: Path | None, result: dict[str, Any]) -> None:
    """The ``--json`` file of a script (``bench/run`` reads it), when asked for."""
    if path is not None:
        write_atomic(path, dump_json(result))


def read_result(path: Path, what: str) -> Any:
    """A JSON file a run wrote (a script's result, a report.json): missing or broken is a
    benchmark failure naming the file."""
    return read_json(path, what=what, error=BenchmarkError)


class BenchmarkError(ValueError):
    """A run that did not produce what the benchmark measures."""


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def run_rounds(bench: Any, repeat: int) -> dict[str, Any]:
    """The driver every timed benchmark shares: say the machine, ``bench.prepare()``, then
    ``repeat`` rounds of ``bench.round(i)``; the result is the machine, ``bench.result()`` and
    the load average at the end."""
    info = machine()
    print(f"machine: {describe(info)}", flush=True)
    bench.prepare()
    for index in range(repeat):
        bench.round(index)
        print(f"round {index + 1}/{repeat} done", flush=True)
    return {"machine": info, **bench.result(), "load_average_at_end": load_average()}
