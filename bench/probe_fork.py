"""Where a forked engine core loses generation speed (issue 21): one engine, one batch, the same
settings, started from different parent processes.

Each variant runs in a fresh process and prints its import, engine start and generation times:

- ``bare``: the notebook's script (``LLM(...)`` then one ``llm.chat``), vLLM's default fork;
- ``bare-inproc``: the same with ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (engine core in-process);
- ``pytest``: the same script as the body of one test under pytest (its default plugins), so
  the engine core is forked from a pytest process inside a test, as the plugin's is;
- ``pytest-no-warnings``, ``pytest-no-logging``, ``pytest-s``: the same with pytest's warnings
  capture, logging capture or output capture off;
- ``bare-thread``: the script with vLLM imported in a background thread first, as the plugin
  imports it beside its preflight;
- ``plugin``, ``plugin-spawn``, ``plugin-inproc``: ``pytest --model=...`` with the notebook's
  settings, forked, spawned, or with the engine core in-process; ``plugin-nolog``,
  ``plugin-notap``, ``plugin-bareargs``, ``plugin-noguard``, ``plugin-nopreflight``,
  ``plugin-nothread`` (or several joined by ``+``): the
  plugin with that part of its own switched off (see ``PATCH``).

    python bench/probe_fork.py --model DIR --tasks public_150.json [--max-tokens 512]
        [--variants bare,pytest,plugin]

One JSON line per variant, then a summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_gpu import phases_of  # bench/ is on sys.path: this runs as bench/probe_fork.py

ROOT = Path(__file__).resolve().parents[1]

BODY = r"""
import json, os, time
def run():
    cfg = json.loads(os.environ["PROBE_CFG"])
    t0 = time.perf_counter()
    if cfg.get("thread_import"):  # as the plugin does: vLLM imported in a background thread
        import threading
        def load():
            from vllm import LLM, SamplingParams
        importer = threading.Thread(target=load)
        importer.start()
        importer.join()
    from vllm import LLM, SamplingParams
    t1 = time.perf_counter()
    extra = {"dtype": cfg["dtype"]} if cfg.get("dtype") else {}
    llm = LLM(model=cfg["model"], max_model_len=4096, gpu_memory_utilization=0.8,
              enforce_eager=True, **extra)
    t2 = time.perf_counter()
    tasks = json.load(open(cfg["tasks"], encoding="utf-8"))
    conversations = [[{"role": "user", "content": t["query"]}] for t in tasks]
    params = SamplingParams(temperature=0.0, max_tokens=cfg["max_tokens"])
    outputs = llm.chat(conversations, params, use_tqdm=False)
    t3 = time.perf_counter()
    tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    with open(cfg["result"], "w") as f:
        json.dump({"import": t1 - t0, "engine start": t2 - t1, "generation": t3 - t2,
                   "tokens": tokens}, f)
"""

# -p probe_patch: the plugin with one of its own parts switched off (PROBE_PATCH, comma-separated):
# nolog (no pipes for the engine's output), notap (no per-step tap of finished requests),
# bareargs (only the notebook's engine arguments), noguard (no SIGINT handler), nopreflight (no
# check runs: each passes), nothread (vLLM imported and the engine released in the main thread).
PATCH = """
import contextlib, os
from pytest_structeval import session
from pytest_structeval.backends import engine, vllm_offline

patches = set(filter(None, os.environ.get("PROBE_PATCH", "").split(",")))
if "nolog" in patches:
    engine.EngineLog.__enter__ = lambda self: self
    engine.EngineLog.__exit__ = lambda self, *exc: None
if "notap" in patches:
    vllm_offline._tap_finished = lambda llm, callback: contextlib.nullcontext()
if "bareargs" in patches:
    init = engine.VllmEngine.__init__
    def bare_init(self, kwargs):
        init(self, {k: v for k, v in kwargs.items() if k not in ("seed", "dtype", "trust_remote_code")})
    engine.VllmEngine.__init__ = bare_init
if "noguard" in patches:
    session.SigintGuard = contextlib.nullcontext
if "nopreflight" in patches:
    session.StructevalSession.check_result = (
        lambda self, name: session.TimedCheck("pass", "not run (probe)", "", 0.0)
    )
if "nothread" in patches:
    class Inline:
        def __init__(self, function, name):
            function()
        def wait(self):
            return 0.0
    session.Background = Inline
"""

PYTEST_VARIANTS = {
    "pytest": [],
    "pytest-no-warnings": ["-p", "no:warnings"],
    "pytest-no-logging": ["-p", "no:logging"],
    "pytest-s": ["-s"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tasks", required=True, type=Path)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--dtype", help="the engine's dtype (float32 on vLLM's CPU build)")
    parser.add_argument(
        "--variants",
        default="bare,pytest,plugin,bare-inproc,plugin-inproc,pytest-no-warnings,"
        "pytest-no-logging,pytest-s",
    )
    args = parser.parse_args()
    summary: dict[str, list[float | None]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        (work / "probe_body.py").write_text(BODY)
        (work / "test_probe.py").write_text(
            "from probe_body import run\n\ndef test_probe():\n    run()\n"
        )
        (work / "bare.py").write_text(  # guarded: vLLM's CPU build spawns its engine core
            "from probe_body import run\n\nif __name__ == '__main__':\n    run()\n"
        )
        (work / "probe_patch.py").write_text(PATCH)
        (work / "plugin-runs").mkdir()  # no test file of the probe's own: the plugin's tasks only
        for variant in args.variants.split(","):
            result = work / f"{variant}.json"
            result.unlink(missing_ok=True)
            cfg = {"model": args.model, "tasks": str(args.tasks.resolve()),
                   "max_tokens": args.max_tokens, "result": str(result),
                   "thread_import": variant == "bare-thread", "dtype": args.dtype}  # fmt: skip
            env = {**os.environ, "PROBE_CFG": json.dumps(cfg)}
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(work), str(ROOT / "plugin"), os.environ.get("PYTHONPATH")])
            )
            if variant.endswith("-inproc"):
                env["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
            if variant.endswith("-spawn"):
                env["VLLM_WORKER_MULTIPROC_METHOD"] = "spawn"
            base = variant.removesuffix("-inproc").removesuffix("-spawn").removesuffix("-thread")
            cwd = work
            if base == "bare":
                command = [sys.executable, str(work / "bare.py")]
            elif base in PYTEST_VARIANTS:
                command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(work / "test_probe.py"), *PYTEST_VARIANTS[base]]  # fmt: skip
            else:
                command = [
                    sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                    f"--model={args.model}", f"--tasks={args.tasks.resolve()}",
                    f"--max-tokens={args.max_tokens}", "--vllm-arg", "enforce_eager=true",
                    "--gpu-memory-utilization=0.8", "--max-model-len=4096", "--no-cache",
                    f"--out={work / variant}",
                    *([f"--dtype={args.dtype}"] if args.dtype else []),
                ]  # fmt: skip
                if variant.startswith("plugin-no") or variant.startswith("plugin-bare"):
                    env["PROBE_PATCH"] = variant.removeprefix("plugin-").replace("+", ",")
                    command += ["-p", "probe_patch"]
                cwd = work / "plugin-runs"
            started = time.perf_counter()
            done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - started
            run = {"variant": variant, "wall": round(wall, 1), "rc": done.returncode}
            if result.exists():
                run.update({k: round(v, 2) for k, v in json.loads(result.read_text()).items()})
            out = done.stdout + done.stderr
            phases = phases_of(out)
            if phases:
                run["phases"] = phases
                gen = next((v for k, v in phases.items() if k.startswith("generation")), None)
                if gen is not None:
                    run["generation"] = gen
            if "generation" not in run:
                run["tail"] = out[-1500:]
            summary.setdefault(variant, []).append(run.get("generation"))
            print(json.dumps(run), flush=True)
    print(json.dumps({"summary_generation_s": summary}))


if __name__ == "__main__":
    main()
