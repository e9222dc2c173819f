"""StructEvalCallback in a real training run: a ``transformers.Trainer`` trains a LoRA on
builtin:smollm2 for a few steps, saving every two; each checkpoint is evaluated on one task per
output format (the shortest prompts) by a real ``vllm serve`` (CPU build) that loads it at runtime.

Asserted: the scores reach ``trainer.state.log_history`` and the TensorBoard event file the
trainer writes, at each checkpoint's step; each checkpoint holds its report.json and
inference.json, and they agree with the logged numbers; each checkpoint was served as its own
LoRA (the report names it); one server for the whole run; and nothing is left running
afterwards (no process the server started, no bound port). Also, without ``attach`` the
callback refuses to start training, before any server starts.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from pytest_structeval.models import BUILTIN_SMOLLM2, resolve_model
from pytest_structeval.models.finetune import LORA_TARGETS, reference_examples
from pytest_structeval.tasks import BUNDLED_TASKS, FORMATS, TaskSet

transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("tensorboard")

from pytest_structeval.backends.server import PARENT_ENV  # noqa: E402
from pytest_structeval.training import (  # noqa: E402
    StructEvalCallback,
    StructEvalCallbackError,
)

MAX_TOKENS = 16
STEPS, SAVE_STEPS = 4, 2


def server_processes() -> list[int]:
    """Processes started by a server of this process: the server marks its environment with
    our pid, and its engine-core children inherit the mark (even once reparented)."""
    mark = f"{PARENT_ENV}={os.getpid()}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if mark in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def lora_model(model_dir: Path):  # type: ignore[no-untyped-def]
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = transformers.AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.float32, local_files_only=True
    )
    config = LoraConfig(
        r=8, lora_alpha=16, lora_dropout=0.0, target_modules=list(LORA_TARGETS),
        bias="none", task_type="CAUSAL_LM",
    )  # fmt: skip
    return get_peft_model(base, config)


def dataset(model_dir: Path, exclude: set[str]) -> list[dict[str, list[int]]]:
    """Short reference answers of tasks outside the evaluated subset, as chats."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    rows = []
    for task, answer in reference_examples(exclude=exclude):
        chat = [*task.chat_messages(), {"role": "assistant", "content": answer}]
        ids = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False)
        if len(ids) <= 384:
            rows.append({"input_ids": ids, "labels": ids, "attention_mask": [1] * len(ids)})
    return rows[:STEPS]


def trainer_for(model_dir: Path, out: Path, subset: set[str]) -> transformers.Trainer:
    args = transformers.TrainingArguments(
        output_dir=str(out),
        max_steps=STEPS,
        save_steps=SAVE_STEPS,
        save_strategy="steps",
        logging_steps=1,
        per_device_train_batch_size=1,
        learning_rate=1e-3,
        report_to=["tensorboard"],
        use_cpu=True,
        seed=0,
    )
    return transformers.Trainer(
        model=lora_model(model_dir), args=args, train_dataset=dataset(model_dir, subset)
    )


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(resolve_model(BUILTIN_SMOLLM2, root=tmp_path_factory.mktemp("smollm2-cache")))


@pytest.fixture(scope="module")
def subset() -> list[str]:
    """One task per output format, the shortest prompt of each, in file order: every format's
    score is logged, and a LoRA's prefill on vLLM's CPU build is slow (about 110 prompt tokens
    a second on 2 cores: the smoke subset's 19 prompts took a minute per checkpoint)."""
    tasks = TaskSet.load(BUNDLED_TASKS).tasks
    shortest = {fmt: min((t for t in tasks if t.output_type.lower() == fmt), key=lambda t: len(t.query))
                for fmt in FORMATS}  # fmt: skip
    chosen = {t.task_id for t in shortest.values()}
    return [t.task_id for t in tasks if t.task_id in chosen]


def test_without_attach_training_is_refused_before_any_server(model_dir, subset, tmp_path):
    trainer = trainer_for(model_dir, tmp_path / "run", set(subset))
    callback = StructEvalCallback(BUILTIN_SMOLLM2, subset=subset, max_tokens=MAX_TOKENS)
    trainer.add_callback(callback)  # registered, but no trainer to log through
    with pytest.raises(StructEvalCallbackError, match=r"callback\.attach\(trainer\)"):
        trainer.train()
    assert callback.server is None and not server_processes()


@pytest.fixture(scope="module")
def trained(model_dir, subset, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("train") / "run"
    trainer = trainer_for(model_dir, out, set(subset))
    callback = StructEvalCallback(
        BUILTIN_SMOLLM2,
        subset=subset,
        max_tokens=MAX_TOKENS,
        # torch.compile costs ~50 s per server start on 2 cores
        vllm_args={"enforce_eager": True},
    ).attach(trainer)
    trainer.train()
    return trainer, callback, out


@pytest.mark.slow
def test_each_checkpoint_is_evaluated_and_logged_at_its_step(trained, subset):
    trainer, callback, out = trained
    logged = [e for e in trainer.state.log_history if "structeval/overall" in e]
    assert [e["step"] for e in logged] == [2, 4]
    assert [e["step"] for e in callback.evaluations] == [2, 4]
    for entry in logged:
        checkpoint = out / f"checkpoint-{entry['step']}"
        report = json.loads((checkpoint / "structeval" / "report.json").read_text("utf-8"))
        inference = json.loads((checkpoint / "structeval" / "inference.json").read_text("utf-8"))
        assert [t["task_id"] for t in report["tasks"]] == subset
        assert [r["task_id"] for r in inference] == subset
        summary = report["summary"]
        assert entry["structeval/overall"] == summary["overall"]
        assert entry["structeval/estimate"] == summary["format_weighted"]
        assert entry["structeval/n_tasks"] == len(subset)
        for fmt in FORMATS:
            assert entry[f"structeval/{fmt}"] == summary["by_format"][fmt]["mean"]
        # Served as this checkpoint's own LoRA on the base model, through the real engine.
        meta = report["meta"]
        assert meta["backend"] == "openai"
        assert meta["served_adapter"]["id"] == f"checkpoint-{entry['step']}"
        assert meta["served_adapter"]["root"] == str(checkpoint)
        assert meta["served_model"]["id"] == BUILTIN_SMOLLM2
        assert meta["generated"] == len(subset) and meta["cache_hits"] == 0
        assert all(t["finish_reason"] in ("stop", "length") for t in report["tasks"])
    # One server for the run: the first evaluation paid its start, the second did not.
    starts = [e["server_start_seconds"] for e in callback.evaluations]
    assert starts[0] > 0 and starts[1] == 0
    # The adapter changed between the checkpoints, and so did some answer.
    first, second = (
        json.loads((out / f"checkpoint-{s}" / "structeval" / "inference.json").read_text())
        for s in (2, 4)
    )
    assert first != second


@pytest.mark.slow
def test_the_scores_are_in_the_trainers_tensorboard_file(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer, _, out = trained
    files = sorted(out.glob("**/events.out.tfevents.*"))
    assert files, f"no TensorBoard event file under {out}"
    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in files:
        events = EventAccumulator(str(path))
        events.Reload()
        for tag in events.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend((s.step, s.value) for s in events.Scalars(tag))
    logged = {e["step"]: e for e in trainer.state.log_history if "structeval/overall" in e}
    for name in ("overall", "estimate", "json", "csv"):
        points = scalars[f"train/structeval/{name}"]
        assert [step for step, _ in points] == [2, 4]
        for step, value in points:
            assert value == pytest.approx(logged[step][f"structeval/{name}"], abs=1e-6)
    assert "train/loss" in scalars  # the trainer's own scalars, in the same file


@pytest.mark.slow
def test_nothing_is_left_running_after_training(trained):
    _, callback, out = trained
    assert callback.server is None
    assert not server_processes()
    report = json.loads((out / "checkpoint-4" / "structeval" / "report.json").read_text("utf-8"))
    port = urlsplit(report["meta"]["endpoint"]).port
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still answers"
    log = (out / "structeval" / "vllm-server.log").read_text("utf-8", errors="replace")
    assert "load_lora_adapter" in log or "Loaded new LoRA adapter" in log
