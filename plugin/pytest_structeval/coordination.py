"""Generate once per device when several pytest-xdist workers share a session.

Every worker collects the same selection, but only one engine may live on a device. The
selection is split into one shard per device; the worker that owns a shard generates it
under a file lock and marks it done; every worker then reads all generations from the shared
generation cache. With one device (one GPU, or the CPU) there is one shard: the first worker
generates everything and the others build no engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from .backends.base import Backend, Generation
from .tasks import Task

POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Worker:
    """This process's place among the xdist workers (index 0 of 1 without xdist)."""

    index: int
    count: int

    @classmethod
    def from_workerinput(cls, workerinput: dict[str, object] | None) -> Worker:
        if not workerinput:
            return cls(0, 1)
        return cls(
            int(str(workerinput["workerid"]).removeprefix("gw")), int(workerinput["workercount"])
        )  # type: ignore[arg-type]


def visible_gpus() -> list[str]:
    """GPU ids this process may use, without initialising CUDA (which would pin a context in
    the pytest process): ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi -L``."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [d.strip() for d in declared.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listing = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def shard_count(worker: Worker, gpus: Sequence[str]) -> int:
    """One shard per device in use: never two engines on one GPU, one engine on the CPU."""
    return max(1, min(worker.count, len(gpus)))


def pin_worker_to_gpu(worker: Worker, gpus: Sequence[str]) -> str | None:
    """Give shard owners their own GPU; call before anything imports torch or vLLM."""
    shards = shard_count(worker, gpus)
    if shards < 2 or worker.index >= shards:
        return None
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus[worker.index]
    return gpus[worker.index]


def generate_shared(
    backend: Backend,
    tasks: Sequence[Task],
    *,
    exchange: Path,
    worker: Worker,
    shards: int,
    on_phase: Callable[[str], None] | None = None,
) -> dict[str, Generation]:
    """Generations for ``tasks``; the backend must cache into a store all workers can read."""
    exchange.mkdir(parents=True, exist_ok=True)
    own: dict[str, Generation] = {}
    if worker.index < shards:
        with FileLock(str(exchange / f"shard-{worker.index}.lock")):
            own = backend.generate(tasks[worker.index :: shards], on_phase=on_phase)
            (exchange / f"shard-{worker.index}.done").touch()
    for shard in range(shards):
        done = exchange / f"shard-{shard}.done"
        while not done.exists():
            time.sleep(POLL_SECONDS)
    # The other shards are in the cache now: this call reads them and generates nothing.
    others = backend.generate([t for t in tasks if t.task_id not in own], on_phase=on_phase)
    return {**others, **own}
