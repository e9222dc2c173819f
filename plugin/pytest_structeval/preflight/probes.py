"""What the preflight learns by importing things: each probe is a function that returns a JSON
dict, runnable in this process or in a fresh interpreter:

    python -m pytest_structeval.preflight.probes NAME [ARG...]

prints the dict as one JSON line after ``MARK`` (``environment.run_probe`` reads it back).

The checks run in a fresh interpreter whatever can crash it or touch CUDA: importing torch,
torchvision, torchaudio, flash-attn or vLLM's compiled flash-attention, and NVML. The one probe
they run in their own process is ``vllm_state``: the engine imports vLLM into that process
anyway, so preflight's import is the one the engine reuses (importing vLLM or torch creates no
CUDA context; vLLM itself sets ``PYTORCH_NVML_BASED_CUDA_CHECK=1`` so that even
``torch.cuda.is_available()`` asks NVML).

Standard library only at module level; each probe imports what it inspects.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable

MARK = "__PREFLIGHT__"


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def module_state(name: str) -> dict[str, object]:
    """``{"state": "absent" | "ok" | "broken", "version"?, "error"?}`` for ``import name``."""
    try:
        spec = importlib.util.find_spec(name)
    except BaseException as exc:  # a broken parent package or finder
        return {"state": "broken", "error": _error(exc)}
    if spec is None:
        return {"state": "absent"}
    try:
        module = importlib.import_module(name)
    except BaseException as exc:  # anything a broken extension raises, SystemExit included
        return {"state": "broken", "error": _error(exc)}
    return {"state": "ok", "version": str(getattr(module, "__version__", "") or "")}


def torch_state() -> dict[str, object]:
    """torch's version, CUDA version and C++ ABI, and whether the CUDA runtime finds a GPU.

    The runtime check is the real one (``cudaGetDeviceCount``, which fails on a driver too old
    for torch's CUDA), not NVML's count: that is why this probe runs in its own interpreter."""
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
    import torch  # the probe's subject: runs in its own subprocess

    out: dict[str, object] = {
        "version": torch.__version__,
        "cuda": torch.version.cuda,
        "cxx11abi": bool(torch._C._GLIBCXX_USE_CXX11_ABI),
    }
    try:
        out["cuda_available"] = bool(torch.cuda.is_available())
        out["device_count"] = torch.cuda.device_count() if out["cuda_available"] else 0
    except Exception as exc:
        out["cuda_available"], out["cuda_error"] = False, _error(exc)
    return out


def vllm_state() -> dict[str, object]:
    """``import vllm``: ``{"version"}`` or ``{"error"}``.

    Only the package (which imports torch), not ``vllm.LLM``: that pulls in transformers, which
    imports torchvision and flash-attn when present, and a broken one of those has its own check
    (run in a subprocess) instead of failing this one too, or crashing this process."""
    try:
        import vllm  # the probe's subject: runs in its own subprocess
    except Exception as exc:
        return {"error": _error(exc)}
    return {"version": str(vllm.__version__)}


def vllm_flash_attn_state() -> dict[str, object]:
    """Whether vLLM's bundled flash-attention (its compiled FA2/FA3 kernels) loads."""
    try:
        from vllm.vllm_flash_attn import flash_attn_varlen_func  # noqa: F401
    except BaseException as exc:
        return {"state": "broken", "error": _error(exc)}
    return {"state": "ok"}


class _Memory(ctypes.Structure):
    _fields_ = [
        ("total", ctypes.c_ulonglong),
        ("free", ctypes.c_ulonglong),
        ("used", ctypes.c_ulonglong),
    ]


def nvml_state() -> dict[str, object]:
    """Driver version, the CUDA version it supports, and every GPU's memory, from NVML through
    ctypes: no dependency, and NVML never creates a CUDA context."""
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as exc:
        return {"error": f"NVML library libnvidia-ml.so.1 not found ({exc})"}
    lib.nvmlErrorString.restype = ctypes.c_char_p

    def call(fn: str, *args: object) -> None:
        rc = getattr(lib, fn)(*args)
        if rc != 0:
            raise RuntimeError(f"{fn}: {lib.nvmlErrorString(rc).decode()}")

    try:
        call("nvmlInit_v2")
        buf = ctypes.create_string_buffer(96)
        call("nvmlSystemGetDriverVersion", buf, 96)
        out: dict[str, object] = {"driver": buf.value.decode()}
        cuda = ctypes.c_int()
        call("nvmlSystemGetCudaDriverVersion_v2", ctypes.byref(cuda))
        out["cuda_driver"] = cuda.value
        count = ctypes.c_uint()
        call("nvmlDeviceGetCount_v2", ctypes.byref(count))
        devices = []
        for index in range(count.value):
            handle = ctypes.c_void_p()
            call("nvmlDeviceGetHandleByIndex_v2", index, ctypes.byref(handle))
            call("nvmlDeviceGetName", handle, buf, 96)
            name = buf.value.decode()
            call("nvmlDeviceGetUUID", handle, buf, 96)
            uuid = buf.value.decode()
            memory = _Memory()
            call("nvmlDeviceGetMemoryInfo", handle, ctypes.byref(memory))
            devices.append(
                {
                    "index": index,
                    "name": name,
                    "uuid": uuid,
                    "total": memory.total,
                    "free": memory.free,
                }
            )
        out["devices"] = devices
        call("nvmlShutdown")
        return out
    except Exception as exc:
        return {"error": str(exc)}


PROBES: dict[str, Callable[..., dict[str, object]]] = {
    "module": module_state,
    "torch": torch_state,
    "vllm": vllm_state,
    "vllm-flash-attn": vllm_flash_attn_state,
    "nvml": nvml_state,
}


def main(argv: list[str] | None = None) -> int:
    name, *args = sys.argv[1:] if argv is None else argv
    print(MARK + json.dumps(PROBES[name](*args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
