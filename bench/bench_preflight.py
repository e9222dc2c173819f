"""What the preflight costs, and what it saves the engine: each scenario in a fresh interpreter.

Scenarios (each run --runs times; median and spread):
- preflight: every check, as an evaluation runs them, then the engine's own `from vllm import
  LLM` in the same process (it reuses preflight's `import vllm`);
- engine-import: `from vllm import LLM` alone in a fresh process (the engine with no preflight);
- vllm-subprocess: the vLLM probe in a subprocess (how the CUDA route used to run it), then the
  engine's import in this process: the import paid twice;
- no-engine: every check with engine_not_needed set (a fully cached run);
- probes: each subprocess probe alone (their sum is what running them one after another costs);
- torch-import: `import torch` in this process against a subprocess that does it;
- cuda-context (where NVML works): whether importing torch and asking it about the GPU, as
  vLLM's import does, creates a CUDA context in this process.

    python bench/bench_preflight.py [--runs N] [--model builtin:tiny] [--json PATH]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import child_env, load_average, machine, summary, write_result

# -- children: one scenario each, in a fresh interpreter ------------------------------------


def _time_engine_import() -> float | None:
    started = time.perf_counter()
    try:
        from vllm import LLM  # noqa: F401
    except Exception:
        return None
    return time.perf_counter() - started


def child_preflight(model: str, engine_not_needed: str | None) -> dict[str, object]:
    from pytest_structeval.preflight import preflight_checks
    from pytest_structeval.settings import Settings

    with tempfile.TemporaryDirectory() as out:
        settings = Settings.of(model=model, out_dir=out)
        started = time.perf_counter()
        times, statuses = {}, {}
        for check in preflight_checks(settings, engine_not_needed=engine_not_needed):
            t = time.perf_counter()
            statuses[check.name] = check.run().status
            times[check.name] = round(time.perf_counter() - t, 3)
        total = time.perf_counter() - started
    heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("vllm", "torch"))
    return {
        "total": total,
        "checks": times,
        "statuses": statuses,
        "heavy_modules_loaded": len(heavy),
        "engine_import_after": None if engine_not_needed else _time_engine_import(),
    }


def child_engine_import() -> dict[str, object]:
    return {"total": _time_engine_import()}


def child_vllm_subprocess() -> dict[str, object]:
    from pytest_structeval.preflight import environment

    started = time.perf_counter()
    out = environment.run_probe("vllm", [], 600)
    probe = time.perf_counter() - started
    return {"probe": probe, "ok": "version" in out, "engine_import_after": _time_engine_import()}


def child_probe(name: str, *args: str) -> dict[str, object]:
    from pytest_structeval.preflight import environment

    started = time.perf_counter()
    out = environment.run_probe(name, list(args), 600)
    return {"total": time.perf_counter() - started, "result": out}


def child_torch_import() -> dict[str, object]:
    from pytest_structeval.preflight import environment

    started = time.perf_counter()
    environment.run_probe("module", ["torch"], 600)
    subprocess_s = time.perf_counter() - started
    started = time.perf_counter()
    import torch  # noqa: F401

    return {"subprocess": subprocess_s, "in_process": time.perf_counter() - started}


class _Process(ctypes.Structure):
    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
    ]


def _nvml_processes() -> tuple[list[int], int] | None:
    """PIDs with a context on GPU 0 (as NVML lists them) and its used memory, or None."""
    from pytest_structeval.preflight.probes import _Memory

    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return None
    lib.nvmlInit_v2()
    handle = ctypes.c_void_p()
    lib.nvmlDeviceGetHandleByIndex_v2(0, ctypes.byref(handle))
    count = ctypes.c_uint(64)
    procs = (_Process * 64)()
    rc = lib.nvmlDeviceGetComputeRunningProcesses_v3(handle, ctypes.byref(count), procs)
    pids = [procs[i].pid for i in range(count.value)] if rc == 0 else [-rc]
    memory = _Memory()
    lib.nvmlDeviceGetMemoryInfo(handle, ctypes.byref(memory))
    return pids, memory.used


def child_cuda_context() -> dict[str, object]:
    """Each step, then: torch.cuda.is_initialized(), whether NVML lists this process on GPU 0
    (it does once a context exists), GPU 0's used memory."""
    steps: dict[str, object] = {}
    pid = os.getpid()

    def record(step: str, torch: object = None) -> None:
        found = _nvml_processes()
        steps[step] = {
            "torch_cuda_initialized": None if torch is None else torch.cuda.is_initialized(),  # type: ignore[attr-defined]
            "this_process_has_a_context": None if found is None else pid in found[0],
            "gpu0_processes": None if found is None else len(found[0]),
            "gpu0_used_mib": None if found is None else found[1] // 2**20,
        }

    record("start")
    os.environ["PYTORCH_NVML_BASED_CUDA_CHECK"] = "1"  # what `import vllm` sets
    import torch

    record("import torch", torch)
    available, count = torch.cuda.is_available(), torch.cuda.device_count()
    record(f"NVML-based is_available()={available}, device_count()={count}", torch)
    os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK")
    record(f"runtime is_available()={torch.cuda.is_available()} (cuInit)", torch)
    torch.zeros(1, device="cuda")
    record("a tensor on the GPU (a context, for comparison)", torch)
    return {"steps": steps}


CHILDREN = {
    "preflight": lambda model: child_preflight(model, None),
    "no-engine": lambda model: child_preflight(model, "not needed: all 150 generations are cached"),
    "engine-import": lambda model: child_engine_import(),
    "vllm-subprocess": lambda model: child_vllm_subprocess(),
    "torch-import": lambda model: child_torch_import(),
    "cuda-context": lambda model: child_cuda_context(),
}


# -- the parent -----------------------------------------------------------------------------


def _child(args: list[str]) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        env=child_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {args} failed: {proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, *rest = args.child
        result = CHILDREN[name](args.model) if name in CHILDREN else child_probe(name, *rest)
        print(json.dumps(result))
        return 0

    from importlib import util

    has_vllm = util.find_spec("vllm") is not None
    results: dict[str, object] = {"machine": machine()}
    print(json.dumps(results["machine"]))
    runs: dict[str, list[dict[str, object]]] = {}
    scenarios = ["preflight", "no-engine", "torch-import"]
    if has_vllm:
        scenarios += ["engine-import", "vllm-subprocess"]
    for _ in range(args.runs):  # interleaved, so that load changes hit every scenario alike
        for scenario in scenarios:
            runs.setdefault(scenario, []).append(_child([scenario, "--model", args.model]))
    preflight = runs["preflight"]
    results["statuses"] = preflight[-1]["statuses"]
    results["preflight_s"] = summary([r["total"] for r in preflight])
    results["slowest_checks_s"] = dict(
        sorted(
            {
                name: statistics.median(r["checks"][name] for r in preflight)
                for name in preflight[0]["checks"]
            }.items(),
            key=lambda kv: -kv[1],
        )[:4]
    )
    results["no_engine_s"] = summary([r["total"] for r in runs["no-engine"]])
    results["no_engine_heavy_modules_loaded"] = max(
        r["heavy_modules_loaded"] for r in runs["no-engine"]
    )
    results["torch_import_in_process_s"] = summary([r["in_process"] for r in runs["torch-import"]])
    results["torch_import_subprocess_s"] = summary([r["subprocess"] for r in runs["torch-import"]])
    if has_vllm:
        after = [r["engine_import_after"] for r in preflight]
        cold = [r["total"] for r in runs["engine-import"]]
        sub = runs["vllm-subprocess"]
        results["engine_import_after_preflight_s"] = summary(after)
        results["engine_import_cold_s"] = summary(cold)
        # What preflight adds to a run, on top of the import the engine pays anyway.
        results["preflight_plus_engine_import_s"] = summary(
            [r["total"] + a for r, a in zip(preflight, after, strict=True)]
        )
        results["vllm_probe_subprocess_s"] = summary([r["probe"] for r in sub])
        results["subprocess_probe_plus_engine_import_s"] = summary(
            [r["probe"] + r["engine_import_after"] for r in sub]
        )
    probes = [["module", "torchvision"], ["module", "torchaudio"], ["module", "flash_attn"]]
    nvml = _child(["nvml"])["result"]
    if "error" not in nvml and "crash" not in nvml:
        probes += [["torch"], ["nvml"]]
        if has_vllm:
            probes.append(["vllm-flash-attn"])
        results["cuda_context"] = _child(["cuda-context"])["steps"]
    for probe in probes:
        results[f"probe {' '.join(probe)}_s"] = summary(
            [_child(probe)["total"] for _ in range(args.runs)]
        )
    results["probes_sum_s"] = round(
        sum(v["median"] for k, v in results.items() if k.startswith("probe ")), 3
    )
    for key, value in results.items():
        if isinstance(value, dict) and "median" in value:
            print(
                f"{key:42} {value['median']:7.3f} s  ({value['min']:.3f}-{value['max']:.3f}, n={value['runs']})"
            )
        elif key != "machine":
            print(f"{key:42} {json.dumps(value)}")
    results["load_average_at_end"] = load_average()
    write_result(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
