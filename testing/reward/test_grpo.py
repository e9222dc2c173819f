"""One real GRPO step with TRL on builtin:tiny, rewarded by ``structeval_reward``.

TRL's ``GRPOTrainer`` generates with transformers (no vLLM) on the CPU from the bundled tasks'
rows, calls the reward the way it calls every custom reward function, and takes one optimizer
step. The reward runs unchanged; a recorder around it keeps what TRL passed and what the reward
returned, so the test can check TRL's keywords, that each value is ``score_task`` of the task
and the decoded completion, and that TRL logged those values. Skipped where ``trl`` is absent.
Two steps (conversational and plain prompts): 8-26 s on 2 shared cores, the first
including TRL's import.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from pytest_structeval.models import BUILTIN_TINY, resolve_model
from pytest_structeval.reward import (
    StructEvalReward,
    completion_text,
    dataset_rows,
    structeval_reward,
)
from pytest_structeval.scoring import score_task
from pytest_structeval.tasks import BUNDLED_TASKS, TaskSet

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model, tokenizer and data are all local

# The four shortest prompts keep the forward passes small; two prompts per step, two
# completions each (GRPO compares completions of the same prompt).
TASKS = TaskSet(tuple(sorted(TaskSet.load(BUNDLED_TASKS), key=lambda task: len(task.query))[:4]))
DATASET_COLUMNS = {"task_id", "task_name", "query", "output_type", "raw_output_metric"}
# What TRL 1.16 adds to the dataset columns (GRPOTrainer._calculate_rewards).
TRL_KEYWORDS = {
    "prompts",
    "completions",
    "completion_ids",
    "trainer_state",
    "log_extra",
    "log_metric",
}


class Recorder:
    """Calls the real reward and keeps each call's keywords and result; TRL logs it by name."""

    def __init__(self, reward: StructEvalReward) -> None:
        self.reward = reward
        self.__name__ = reward.__name__
        self.calls: list[tuple[dict[str, Any], list[float | None]]] = []

    def __call__(self, **keywords: Any) -> list[float | None]:
        rewards = self.reward(**keywords)
        self.calls.append((keywords, rewards))
        return rewards


@pytest.mark.parametrize("conversational", [True, False], ids=["conversational", "plain"])
def test_one_grpo_step_on_the_tiny_model(tmp_path: Path, conversational: bool) -> None:
    recorder = Recorder(structeval_reward)
    args = trl.GRPOConfig(
        output_dir=str(tmp_path),
        use_cpu=True,
        bf16=False,  # GRPOConfig defaults to bf16; the tiny model is float32 on the CPU
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=16,
        max_steps=1,
        logging_steps=1,
        gradient_checkpointing=False,
        save_strategy="no",
        report_to="none",
        seed=0,
    )
    trainer = trl.GRPOTrainer(
        model=resolve_model(BUILTIN_TINY),
        reward_funcs=[recorder],
        train_dataset=datasets.Dataset.from_list(
            dataset_rows(TASKS, conversational=conversational)
        ),
        args=args,
    )
    trainer.train()

    assert trainer.state.global_step == 1
    assert len(recorder.calls) == 1
    keywords, rewards = recorder.calls[0]
    assert DATASET_COLUMNS | TRL_KEYWORDS <= set(keywords)
    assert keywords["trainer_state"] is trainer.state
    assert len(rewards) == len(keywords["completions"]) == 4
    by_id = TASKS.by_id()
    for index, completion in enumerate(keywords["completions"]):
        task = by_id[keywords["task_id"][index]]
        if conversational:
            assert keywords["prompts"][index] == [{"role": "user", "content": task.query}]
            assert completion[-1]["role"] == "assistant"
        else:
            assert keywords["prompts"][index] == task.query
            assert isinstance(completion, str)
        assert keywords["raw_output_metric"][index] == list(task.raw_output_metric or ())
        assert rewards[index] == score_task(task, completion_text(completion)).score
    # Each prompt twice in a row: its two generations.
    assert keywords["task_id"][0::2] == keywords["task_id"][1::2]

    logged = trainer.state.log_history[0]
    assert math.isclose(
        logged["rewards/structeval_reward/mean"], sum(rewards) / len(rewards), abs_tol=1e-6
    )
    assert "structeval_reward/syntax" in logged and "structeval_reward/keys" in logged
