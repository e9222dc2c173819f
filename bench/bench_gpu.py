"""The plugin against the notebook's own script, same settings, on one GPU (issue 21).

Runs, each in a fresh process:

- bare: ``LLM(model, max_model_len=L, gpu_memory_utilization=U, enforce_eager=True)`` and one
  ``llm.chat`` over every task of the task file at ``max_tokens`` N, timed as import, engine
  start and generation;
- plugin: ``pytest --model=M --tasks=T --max-tokens=N --vllm-arg enforce_eager=true
  --gpu-memory-utilization=U --max-model-len=L --no-cache`` with its phase lines parsed.

and prints one JSON line: each run's wall time and phases, and plugin/bare.

``--answers FILE`` (a submission: a JSON list of objects with ``task_id`` and the answer text in
``generation``, ``output`` or ``response``) gives a realistic-length workload instead: each
task's max_tokens is the token length of that task's answer and ``ignore_eos`` is on, so a
random-weight model generates as many tokens as a real model did. The plugin has no per-task
max_tokens, so this mode runs the bare script once per engine choice (``--variants``): the
notebook's arguments, and the plugin's own engine arguments (``backends.request.engine_args``
of ``Settings.of(model=..., max_tokens=...)``) with and without ``enforce_eager``. What differs
between those choices is engine start (compilation, CUDA graphs) and generation; the plugin's
other phases do not depend on them.

    python bench/bench_gpu.py --model /path/to/model --tasks ../shared/data/public_150.json \\
        [--max-tokens 1024] [--answers ../shared/data/inference/<submission>.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BARE = r"""
import json, sys, time
t0 = time.perf_counter()
cfg = json.loads(sys.argv[1])
if cfg.get("thread_import"):  # as the plugin does: vLLM imported in a background thread
    import threading
    importer = threading.Thread(target=__import__, args=("vllm",))
    importer.start()
    importer.join()
from vllm import LLM, SamplingParams
t1 = time.perf_counter()
llm = LLM(**cfg["engine"])
t2 = time.perf_counter()
tasks = json.load(open(cfg["tasks"], encoding="utf-8"))
lengths = cfg["lengths"]
conversations = [[{"role": "user", "content": t["query"]}] for t in tasks]
params = [SamplingParams(temperature=0.0, max_tokens=lengths.get(t["task_id"], cfg["max_tokens"]),
                         ignore_eos=bool(lengths)) for t in tasks]
outputs = llm.chat(conversations, params, use_tqdm=False)
t3 = time.perf_counter()
tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
print("BARE " + json.dumps({"import": t1 - t0, "engine start": t2 - t1, "generation": t3 - t2,
                             "tokens": tokens}))
"""


def phases_of(output: str) -> dict[str, float]:
    """A plugin run's phase lines (``structeval: NAME SECONDS s``), by name."""
    return {
        m[1]: float(m[2])
        for m in re.finditer(r"^structeval: (.+?) (\d+\.\d) s$", output, re.MULTILINE)
    }


def answer_lengths(answers: Path, model: str, cap: int) -> dict[str, int]:
    """task_id -> the token length of that task's answer in a submission (at most ``cap``)."""
    from transformers import AutoTokenizer  # lazy: only the realistic workload needs it

    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = json.loads(answers.read_text(encoding="utf-8"))
    lengths = {}
    for row in rows:
        text = next((row[k] for k in ("generation", "output", "response") if k in row), None)
        if isinstance(text, str) and "task_id" in row:
            lengths[row["task_id"]] = max(1, min(cap, len(tokenizer.encode(text))))
    return lengths


def engine_of(variant: str, args: argparse.Namespace) -> dict[str, object]:
    """``vllm.LLM``'s keyword arguments for one engine choice."""
    if variant == "notebook":
        return {
            "model": args.model,
            "max_model_len": args.max_model_len,
            "gpu_memory_utilization": args.gpu_memory_utilization,
            "enforce_eager": True,
        }
    sys.path.insert(0, str(ROOT / "plugin"))
    from pytest_structeval.backends.request import engine_args  # the plugin's own plan
    from pytest_structeval.settings import Settings

    eager = {"plugin-eager": {"enforce_eager": True}, "plugin-default": {}}[variant]
    settings = Settings.of(model=args.model, max_tokens=args.max_tokens, vllm_args=eager)
    return engine_args(settings.engine, settings.sampling, model_path=args.model)


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str, int]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    return time.perf_counter() - started, done.stdout + done.stderr, done.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--tasks", required=True, type=Path)
    parser.add_argument("--max-tokens", type=int, default=1024)
    parser.add_argument("--max-model-len", type=int, default=4096)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.8)
    parser.add_argument("--answers", type=Path, help="a submission: realistic answer lengths")
    parser.add_argument("--only", choices=("bare", "plugin"))
    parser.add_argument(
        "--variants",
        default=None,
        help="engine choices, comma-separated: notebook, plugin-eager, plugin-default (a "
        "-thread suffix imports vLLM in a background thread first); default: all three with "
        "--answers, else notebook",
    )
    args = parser.parse_args()
    lengths = (
        answer_lengths(args.answers, args.model, args.max_tokens) if args.answers else {}
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "plugin"), os.environ.get("PYTHONPATH")]))}
    result: dict[str, object] = {"max_tokens": args.max_tokens, "realistic": bool(lengths)}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if args.only != "plugin":
            default = "notebook,plugin-eager,plugin-default" if lengths else "notebook"
            for variant in (args.variants or default).split(","):
                cfg = {
                    "thread_import": variant.endswith("-thread"),
                    "engine": engine_of(variant.removesuffix("-thread"), args),
                    "tasks": str(args.tasks.resolve()),
                    "max_tokens": args.max_tokens,
                    "lengths": lengths,
                }
                wall, out, rc = timed([sys.executable, "-c", BARE, json.dumps(cfg)], env, work)
                line = next((x for x in out.splitlines() if x.startswith("BARE ")), None)
                run = {"wall": wall, "rc": rc, **(json.loads(line[5:]) if line else {})}
                if line is None:
                    run["tail"] = out[-2000:]
                result["bare" if variant == "notebook" else variant] = run
        if args.only != "bare":
            command = [
                sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                f"--model={args.model}", f"--tasks={args.tasks.resolve()}",
                f"--max-tokens={args.max_tokens}", "--vllm-arg", "enforce_eager=true",
                f"--gpu-memory-utilization={args.gpu_memory_utilization}",
                f"--max-model-len={args.max_model_len}", "--no-cache", f"--out={work / 'out'}",
            ]  # fmt: skip
            if lengths:
                # The plugin has no per-task max_tokens: the realistic workload runs the bare
                # script only, unless the plugin grows one; say so rather than compare unequal.
                result["plugin"] = {"skipped": "per-task max_tokens: bare script only"}
            else:
                wall, out, rc = timed(command, env, work)
                phases = phases_of(out)
                result["plugin"] = {"wall": wall, "rc": rc, "phases": phases}
                if rc != 0:
                    result["plugin"]["tail"] = out[-3000:]  # type: ignore[index]
    bare, plugin = result.get("bare"), result.get("plugin")
    if isinstance(bare, dict) and isinstance(plugin, dict) and "wall" in plugin:
        result["plugin_over_bare"] = round(plugin["wall"] / bare["wall"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
