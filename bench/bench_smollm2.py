"""What builtin:smollm2 costs on this machine, and how it scores: build, engine start, generation.

    .venv/bin/python bench/bench_smollm2.py [--all] [--max-tokens 512] [--repeat 3] \
        [--adapter DIR | --train-steps 4] [--fresh-build] [--out DIR]

* **build**: with ``--fresh-build``, ``resolve_model("builtin:smollm2")`` into an empty cache
  root (the GGUF is unpacked and saved; time, peak memory and size are printed); otherwise the model is
  resolved from the usual cache (built there if absent) and the build is not timed.
* **train** (``--train-steps N``): ``models.finetune.train_lora_adapter`` as the test does it
  (rank 8, batch 1, examples of at most 384 tokens, seed 0) on the bundled reference answers of
  the tasks *not* evaluated, timed; the run then evaluates with that adapter.
* **run**: ``VllmBackend`` with no generation cache, so every repeat starts an engine
  (``enforce_eager``, KV cache ``VLLM_CPU_KVCACHE_SPACE``, else 2 GiB) and generates every
  task: engine start and generation are timed apart (the backend's own timers) and together
  (wall). ``bench/run``'s figure (f) times the plugin itself on this subset instead
  (``bench_runs.py --kinds cold --model builtin:smollm2 --pytest-arg=-m --pytest-arg=smoke``).
* **tasks**: the subset of one task per task kind (the first task of each ``task_name`` in the
  bundled open150.json: 19 tasks), or all 150 with ``--all``.
* **scores**: the report of the last repeat (``Report.build`` over ``score_task``, as the plugin
  builds it) is printed and, with ``--out``, written as report.json, ready for
  ``python -m pytest_structeval.compare``. Per task: finish reason, score, whether the answer
  parses as returned / only after extraction (and what was stripped), the parse error's line
  and column.

Greedy decoding: the outputs (and scores) of the repeats must be identical; the script says so.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import child_env, describe, machine, write_result

from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.models import BUILTIN_SMOLLM2, resolve_model
from pytest_structeval.models.finetune import reference_examples, train_lora_adapter
from pytest_structeval.report.report import Report, TaskRecord
from pytest_structeval.scoring.score import score_task
from pytest_structeval.settings import Settings
from pytest_structeval.tasks import BUNDLED_TASKS, TaskSet

# The engine sees the benchmarks' KV cache size; the checkpoint is local: nothing to fetch.
os.environ.update({k: child_env()[k] for k in ("VLLM_CPU_KVCACHE_SPACE", "HF_HUB_OFFLINE")})


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def behaviour(record: dict) -> str:
    if record["strict_ok"]:
        parse = "valid as returned"
    elif record["syntax_ok"] and record["stripped"]:
        parse = f"valid only after extraction (stripped {', '.join(record['stripped'])})"
    elif record["syntax_ok"]:
        parse = "parses as upstream does, not with a strict parser"
    else:
        error = record.get("syntax_error") or {}
        where = f"line {error.get('line')}, column {error.get('column')}"
        parse = f"does not parse ({where}: {str(error.get('message'))[:60]})"
    return f"{record['finish_reason']:<6} {record['score']:.2f}  {parse}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all", action="store_true", help="all 150 tasks (default: 19)")
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=1)
    adapter = parser.add_mutually_exclusive_group()
    adapter.add_argument("--adapter", default=None, help="a LoRA adapter directory")
    adapter.add_argument(
        "--train-steps", type=int, default=0, help="train a LoRA adapter first (steps)"
    )
    parser.add_argument("--fresh-build", action="store_true", help="time a build from scratch")
    parser.add_argument("--out", type=Path, default=None, help="write report.json here")
    args = parser.parse_args()

    if args.fresh_build:
        root = Path(tempfile.mkdtemp(prefix="bench-smollm2-"))
        started = time.perf_counter()
        model = resolve_model(BUILTIN_SMOLLM2, root=root)
        build_s = time.perf_counter() - started
        # Nothing else has run in this process yet: its peak is the build's.
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux
        print(
            f"build {build_s:.1f} s, peak memory {peak:.2f} GB, "
            f"{dir_bytes(Path(model)) / 1e6:.1f} MB in {model}"
        )
        for file in sorted(Path(model).iterdir()):
            print(f"  {file.name:<24}{file.stat().st_size:>12,} bytes")
    else:
        model = resolve_model(BUILTIN_SMOLLM2)

    taskset = TaskSet.load(BUNDLED_TASKS)
    tasks = list(taskset) if args.all else taskset.first_of_each_kind()
    if args.train_steps:
        examples = reference_examples(exclude={t.task_id for t in tasks})
        target = Path(tempfile.mkdtemp(prefix="bench-lora-")) / "adapter"
        started = time.perf_counter()
        train_lora_adapter(
            model, target, examples, steps=args.train_steps, batch_size=1, max_length=384
        )
        train_s = time.perf_counter() - started
        args.adapter = str(target)
        print(f"train {args.train_steps} steps {train_s:.1f} s (model load included) -> {target}")
    config = Settings.of(
        model=BUILTIN_SMOLLM2,
        adapter=args.adapter,
        max_tokens=args.max_tokens,
        vllm_args={"enforce_eager": True},
    )
    times: dict[str, list[float]] = {"engine_start": [], "generation": [], "wall": []}
    texts: list[dict[str, str]] = []
    for _ in range(args.repeat):
        backend = VllmBackend(config.engine, config.sampling, model_path=model, progress=False)
        started = time.perf_counter()
        try:
            generations = backend.generate(tasks)
        finally:
            backend.close()
        times["wall"].append(time.perf_counter() - started)
        for phase in ("engine_start", "generation"):
            times[phase].append(backend.stats.timings[phase])
        texts.append({k: g.text for k, g in generations.items()})

    records = {}
    for task in tasks:
        generation = generations[task.task_id]
        score = score_task(task, generation.text, finish_reason=generation.finish_reason)
        records[task.task_id] = TaskRecord(
            score, generation.text, "passed" if score.perfect else "failed", from_cache=False
        )
    meta = {**backend.meta(), "generations": None}
    report = Report.build(records, taskset, meta=meta)
    if args.out:
        write_result(args.out / "report.json", report.to_dict())

    print(f"machine at the end: {describe(machine())}")
    print(
        f"{BUILTIN_SMOLLM2}{' + adapter ' + args.adapter if args.adapter else ''}: "
        f"{len(tasks)} tasks, max_tokens {args.max_tokens}, {args.repeat} repeat(s)"
    )
    for phase, values in times.items():
        spread = f"min {min(values):.1f}, max {max(values):.1f}" if len(values) > 1 else ""
        print(f"  {phase:<13}median {statistics.median(values):7.1f} s  {spread}")
    print(f"  outputs identical across repeats: {all(t == texts[0] for t in texts)}")
    print()
    for task in tasks:
        print(f"{task.task_id:<28}{behaviour(records[task.task_id])}")
    print()
    print("\n".join(report.lines()))
    if args.fresh_build:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
