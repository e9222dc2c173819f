"""Whole-run wall time of the plugin against a bare vLLM script, in one go.

    .venv/bin/python bench/bench_vllm.py [--model builtin:tiny] [--max-tokens 64] \
        [--vllm-arg enforce_eager=true] [--repeat 1]

Three kinds of run, each a fresh Python process timed from start to exit:

* **bare**: the notebook's way, ``LLM(**engine_args)`` then one
  ``LLM.chat(messages, SamplingParams(**sampling_params))`` over the same tasks, with exactly the
  keyword arguments the plugin gives vLLM (taken from ``VllmBackend`` itself, so they cannot
  drift);
* **cold**: the plugin with an empty generation cache: ``python -m pytest --model ... --out ...``
  in an empty scratch project (so no snapshot lands in this repo);
* **warm**: the same command again, served from the cache (no engine).

The acceptance bar is cold <= 1.10 x bare. Runs alternate bare/cold/warm ``--repeat`` times and
the medians are reported, so page-cache warm-up does not favour one side. The bare run's
outputs are compared with the plugin's (greedy decoding: they must match).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugin"))

from pytest_structeval.backends.platform import library_versions, prepare_environment  # noqa: E402
from pytest_structeval.backends.vllm_offline import VllmBackend, VllmConfig  # noqa: E402
from pytest_structeval.models import resolve_model  # noqa: E402
from pytest_structeval.settings import parse_vllm_args  # noqa: E402

DEFAULT_TASKS = ROOT / "plugin" / "pytest_structeval" / "tasksets" / "open150.json"

BARE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from vllm import LLM, SamplingParams

    def main():
        spec = json.load(open(sys.argv[1]))
        llm = LLM(**spec["engine_args"])
        messages = [[{"role": "user", "content": q}] for q in spec["queries"]]
        outputs = llm.chat(messages, sampling_params=SamplingParams(**spec["sampling_params"]),
                           use_tqdm=True, add_generation_prompt=True)
        json.dump([o.outputs[0].text for o in outputs], open(sys.argv[2], "w"))

    if __name__ == "__main__":
        main()
    """
)


def timed(cmd: list[str], *, env: dict[str, str], log: Path, cwd: Path) -> float:
    started = time.perf_counter()
    with log.open("w") as handle:
        proc = subprocess.run(cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd)
    seconds = time.perf_counter() - started
    if proc.returncode not in (0, 1):  # pytest exits 1 when tasks score below the bar
        sys.exit(f"{cmd[:4]} failed with exit code {proc.returncode}; see {log}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="builtin:tiny")
    parser.add_argument("--tasks", type=Path, default=None)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--vllm-arg", action="append", default=[])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()

    tasks_path = args.tasks or DEFAULT_TASKS
    prepare_environment()
    model = resolve_model(args.model)  # build builtin:tiny outside the timings
    config = VllmConfig(
        model=model, max_tokens=args.max_tokens, vllm_args=parse_vllm_args(args.vllm_arg)
    )
    backend = VllmBackend(config)  # no engine: only to get the exact kwargs the plugin uses
    queries = [t["query"] for t in json.loads(tasks_path.read_text())]

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-vllm-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "bare.py").write_text(BARE_SCRIPT)
    project = work / "project"
    project.mkdir(parents=True, exist_ok=True)
    spec = {
        "engine_args": backend.engine_args,
        "sampling_params": backend.sampling_params,
        "queries": queries,
    }
    (work / "bare.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "plugin")}

    times: dict[str, list[float]] = {"bare": [], "cold": [], "warm": []}
    for round_ in range(args.repeat):
        cache = work / f"cache-{round_}"
        out = work / f"out-{round_}"
        times["bare"].append(
            timed(
                [
                    sys.executable,
                    str(work / "bare.py"),
                    str(work / "bare.json"),
                    str(work / "bare-out.json"),
                ],
                env=env,
                log=work / f"bare-{round_}.log",
                cwd=work,
            )
        )
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--model={model}",
            f"--tasks={tasks_path}",
            f"--out={out}",
            f"--cache-dir={cache}",
            f"--max-tokens={args.max_tokens}",
            *(f"--vllm-arg={a}" for a in args.vllm_arg),
        ]
        for kind in ("cold", "warm"):
            times[kind].append(timed(cmd, env=env, log=work / f"{kind}-{round_}.log", cwd=project))

    bare, cold, warm = (statistics.median(times[k]) for k in ("bare", "cold", "warm"))
    plugin_answers = [g["generation"] for g in json.loads((out / "inference.json").read_text())]
    same = json.loads((work / "bare-out.json").read_text()) == plugin_answers
    versions = library_versions()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )
    print(
        f"vllm {versions['vllm']}, torch {versions['torch']}, transformers {versions['transformers']}"
    )
    print(f"model {args.model} ({model}), {len(queries)} tasks from {tasks_path}")
    print(f"engine_args {json.dumps(backend.engine_args)}")
    print(f"sampling_params {json.dumps(backend.sampling_params)}")
    print(f"runs per kind: {args.repeat}; logs in {work}")
    for kind in ("bare", "cold", "warm"):
        print(
            f"{kind:5s} {statistics.median(times[kind]):7.1f} s   ({', '.join(f'{t:.1f}' for t in times[kind])})"
        )
    print(f"ratio cold/bare {cold / bare:.3f} (bar: <= 1.10); warm/bare {warm / bare:.3f}")
    print(f"bare and plugin outputs identical: {same}")
    sys.exit(0 if cold <= 1.10 * bare else 1)


if __name__ == "__main__":
    main()
