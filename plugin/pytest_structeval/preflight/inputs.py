"""The checks of what the run reads and writes: the model (its files, and whether its weights
fit the memory vLLM may use), the LoRA adapter, the task file and the output directory.

Each is a function of the shared facts (``environment.Env``) that returns a ``CheckResult``;
the model and adapter files are inspected by ``model_files``. Standard library only at module
level: these checks also run when no engine will start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..tasks import InputError, TaskSet
from . import environment
from .environment import Env
from .model_files import inspect_adapter
from .results import GIB, MIB, CheckResult, failed, gib, passed, skipped


def model_available(env: Env) -> CheckResult:
    return env.model_files.result


_BYTES_PER_PARAM = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}


def model_fits(env: Env) -> CheckResult:
    found = env.model_files
    if found.weight_bytes is None:
        return skipped("the weights' size is unknown until they are downloaded")
    size = float(found.weight_bytes)
    dtype = env.engine.dtype
    if dtype == "auto" and env.device == "cpu":
        dtype = "float32"  # the plugin's CPU default: vLLM's bf16 CPU kernels crash
    stored = _BYTES_PER_PARAM.get(found.checkpoint_dtype or "")
    if dtype in _BYTES_PER_PARAM and stored:
        size = size / stored * _BYTES_PER_PARAM[dtype]
    if env.device == "cuda":
        gpu = env.selected_gpu()
        if gpu is None:
            return skipped("no GPU to compare with (see cuda-device-visible)")
        budget = env.memory_utilization() * float(gpu["total"])  # type: ignore[arg-type]
        where = f"gpu_memory_utilization {env.memory_utilization():g} of GPU {gpu['index']}"
        fix = (
            "raise --gpu-memory-utilization, use a smaller or quantized model, or split it "
            "over GPUs: --vllm-arg tensor_parallel_size=N"
        )
    else:
        available = environment.mem_available()
        if available is None:
            return skipped("available memory is unknown on this system")
        kv = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "")
        budget = float(available) - (int(kv) * GIB if kv.isdigit() else 0)
        where = "available memory" + (
            f" minus VLLM_CPU_KVCACHE_SPACE={kv} GiB" if kv.isdigit() else ""
        )
        fix = "use a smaller model, or free memory (lower VLLM_CPU_KVCACHE_SPACE)"
    label = f"as {dtype}" if dtype != "auto" else "as stored"
    if size < budget:
        return passed(f"weights {gib(size)} {label}; {where}: {gib(budget)}")
    return failed(
        f"the weights alone need {gib(size)} {label}, more than the {gib(budget)} of "
        f"{where}: loading would run out of memory after the download",
        fix,
    )


def adapter_valid(env: Env) -> CheckResult:
    assert env.engine.adapter is not None
    return inspect_adapter(env.engine.adapter, env.engine.model)


def tasks_valid(env: Env) -> CheckResult:
    path = env.tasks
    try:
        tasks = TaskSet.load(path)
    except InputError as exc:
        return failed(
            str(exc),
            "correct that item, or pass --tasks=<a valid task file in public_150.json format>",
        )
    return passed(f"{len(tasks)} tasks in {path}")


def out_dir_writable(env: Env) -> CheckResult:
    """Probes the nearest existing directory (the session creates the rest at the end)."""
    target = Path(env.out_dir).expanduser().absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return failed(
            f"output directory {target}: {existing} is a file", "pass --out=<a directory>"
        )
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".preflight-"):
            pass
    except OSError as exc:
        return failed(
            f"cannot write in {existing} (for --out {target}): {exc.strerror}",
            "pass --out=<a writable directory>",
        )
    free = shutil.disk_usage(existing).free
    if free < env.min_free_disk_mb * MIB:
        return failed(
            f"only {free // MIB} MiB free on the disk of {target} (want "
            f"{env.min_free_disk_mb} MiB)",
            "free disk space, or pass --out=<a directory on another disk>",
        )
    return passed(f"{target} is writable, {gib(free)} free")
