"""``pytest_structeval.reward``: TRL-style batches in, the evaluation's scores out.

Each batch is laid out as TRL's ``GRPOTrainer._calculate_rewards`` lays it out (TRL 1.16):
``prompts``, ``completions`` and ``completion_ids`` by keyword, every other dataset column as a
keyword list with one value per completion (a prompt repeated once per generation), plus
``trainer_state``, ``log_extra`` and ``log_metric``. Every reward must equal
``score_task(task, text).score`` for the task in its row; the bundled reference answers score
1.0 and their perturbations (fenced, cut, emptied, answered in another format) less, so an
equality that held by accident would show.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Sequence
from typing import Any

import pytest
from support import OPEN150_ANSWERS

from pytest_structeval.reward import (
    StructEvalReward,
    completion_text,
    dataset_rows,
    structeval_reward,
    structeval_strict_reward,
)
from pytest_structeval.scoring import score_task
from pytest_structeval.tasks import BUNDLED_TASKS, InputError, Task, TaskSet, load_generations

TASKS = TaskSet.load(BUNDLED_TASKS)
ANSWERS = load_generations(OPEN150_ANSWERS, TASKS)
# One task per output format, so every parser is on the reward path.
PER_FORMAT = [
    next(t for t in TASKS if t.output_type == kind)
    for kind in dict.fromkeys(t.output_type for t in TASKS)
]


def perturbations(task: Task) -> dict[str, str]:
    """The reference answer, and versions of it the scorer grades lower (in upstream or strict)."""
    answer = ANSWERS[task.task_id]
    other = next(t for t in TASKS if t.output_type != task.output_type)
    return {
        "reference": answer,
        "fenced": f"Here is the {task.output_type}:\n```{task.fmt}\n{answer}\n```\nAnything else?",
        "cut": answer[: len(answer) // 3],
        "empty": "",
        "other format": ANSWERS[other.task_id],
    }


def batch(
    rows: Sequence[dict[str, Any]], texts: Sequence[str], *, conversational: bool
) -> dict[str, Any]:
    """The keywords TRL passes for ``rows[i]`` answered by ``texts[i]``."""
    completions: list[Any] = (
        [[{"role": "assistant", "content": text}] for text in texts]
        if conversational
        else list(texts)
    )
    columns = {name: [row[name] for row in rows] for name in rows[0] if name != "prompt"}
    return {
        "prompts": [row["prompt"] for row in rows],
        "completions": completions,
        "completion_ids": [list(range(len(text))) for text in texts],
        **columns,
        "trainer_state": object(),
        "log_extra": lambda column, values: None,
        "log_metric": lambda name, value: None,
    }


def expected_scores(
    tasks: Sequence[Task], texts: Sequence[str], *, mode: str = "upstream"
) -> list[float]:
    return [
        score_task(task, text, mode=mode).score for task, text in zip(tasks, texts, strict=True)
    ]


def test_every_bundled_reference_answer_earns_one_in_both_formats() -> None:
    texts = [ANSWERS[task.task_id] for task in TASKS]
    for conversational in (True, False):
        rows = dataset_rows(conversational=conversational)
        rewards = structeval_reward(**batch(rows, texts, conversational=conversational))
        assert rewards == expected_scores(TASKS, texts)
        assert rewards == [1.0] * len(TASKS)


@pytest.mark.parametrize("conversational", [True, False], ids=["conversational", "plain"])
@pytest.mark.parametrize("reward", [structeval_reward, structeval_strict_reward], ids=repr)
def test_each_value_is_score_task_of_the_same_task_and_text(
    conversational: bool, reward: StructEvalReward
) -> None:
    tasks: list[Task] = []
    texts: list[str] = []
    for task in PER_FORMAT:
        for text in perturbations(task).values():
            tasks.append(task)
            texts.append(text)
    rows_by_id = {
        row["task_id"]: row for row in dataset_rows(PER_FORMAT, conversational=conversational)
    }
    rows = [rows_by_id[task.task_id] for task in tasks]
    rewards = reward(**batch(rows, texts, conversational=conversational))
    assert rewards == expected_scores(tasks, texts, mode=reward.mode)
    assert all(isinstance(value, float) for value in rewards)
    assert 1.0 in rewards and 0.0 in rewards and any(0.0 < value < 1.0 for value in rewards)


def test_strict_mode_pays_nothing_for_a_yaml_scalar() -> None:
    """Upstream's syntax part goes to any text YAML reads, random words included; strict's does not."""
    task = next(t for t in PER_FORMAT if t.output_type == "YAML")
    rows = dataset_rows([task])
    words = batch(rows, ["salary the of containing"], conversational=True)
    assert structeval_reward(**words) == [0.2]
    assert structeval_strict_reward(**words) == [0.0]
    reference = batch(rows, [ANSWERS[task.task_id]], conversational=True)
    assert structeval_strict_reward(**reference) == [1.0]


def test_repeated_prompts_as_grpo_sends_them() -> None:
    """num_generations=3: each row three times in a row, one completion each."""
    tasks = PER_FORMAT[:2]
    rows = [row for row in dataset_rows(tasks) for _ in range(3)]
    texts = [
        text
        for task in tasks
        for text in (ANSWERS[task.task_id], perturbations(task)["cut"], "no idea")
    ]
    rewards = structeval_reward(**batch(rows, texts, conversational=True))
    assert rewards == expected_scores([t for t in tasks for _ in range(3)], texts)


def test_tasks_without_a_metric_score_on_derived_paths_as_the_evaluation_does() -> None:
    bare = [dataclasses.replace(task, raw_output_metric=None) for task in PER_FORMAT]
    rows = dataset_rows(bare)
    assert all(row["raw_output_metric"] is None for row in rows)
    texts = [perturbations(task)["cut"] for task in PER_FORMAT]
    expected = [score_task(task, text) for task, text in zip(bare, texts, strict=True)]
    assert {result.paths_source for result in expected} == {"derived"}
    with_column = batch(rows, texts, conversational=True)
    assert structeval_reward(**with_column) == [result.score for result in expected]
    # A dataset with no raw_output_metric column at all: the same derived paths.
    del with_column["raw_output_metric"]
    assert structeval_reward(**with_column) == [result.score for result in expected]


def test_unknown_keywords_are_ignored() -> None:
    task = PER_FORMAT[0]
    texts = list(perturbations(task).values())
    rows = dataset_rows([task]) * len(texts)
    plain = batch(rows, texts, conversational=True)
    extra = {
        **plain,
        "environments": [object()] * len(texts),
        "rendering": [False] * len(texts),
        "difficulty": ["hard"] * len(texts),
    }
    assert (
        structeval_reward(**extra)
        == structeval_reward(**plain)
        == expected_scores([task] * len(texts), texts)
    )


def test_the_last_assistant_turn_is_the_answer() -> None:
    """After a tool call the completion is assistant, tool, assistant; a tool-call turn may have
    None content."""
    task = PER_FORMAT[0]
    answer = ANSWERS[task.task_id]
    completion = [
        {"role": "assistant", "content": None, "tool_calls": [{"type": "function"}]},
        {"role": "tool", "name": "lookup", "content": "garbage"},
        {"role": "assistant", "content": answer},
    ]
    assert completion_text(completion) == answer
    assert completion_text(completion[:2]) == ""
    rows = dataset_rows([task])
    keywords = {**batch(rows, [answer], conversational=True), "completions": [completion]}
    assert structeval_reward(**keywords) == [1.0]


def test_rows_of_another_task_get_none() -> None:
    """In a mixed dataset the StructEval columns are None on other rows: TRL skips None."""
    task = PER_FORMAT[0]
    (row,) = dataset_rows([task])
    other = {**dict.fromkeys(row), "prompt": [{"role": "user", "content": "What is 2 + 2?"}]}
    rows = [row, other]
    rewards = structeval_reward(**batch(rows, [ANSWERS[task.task_id], "4"], conversational=True))
    assert rewards == [1.0, None]


def test_log_metric_gets_the_batch_syntax_rate_and_key_score() -> None:
    task = PER_FORMAT[0]
    texts = [ANSWERS[task.task_id], ""]
    logged: dict[str, float] = {}
    keywords = {
        **batch(dataset_rows([task]) * 2, texts, conversational=True),
        "log_metric": logged.__setitem__,
    }
    structeval_reward(**keywords)
    assert logged == {"structeval_reward/syntax": 0.5, "structeval_reward/keys": 0.5}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prompts": ["a prompt"]}, "1 prompts for 2 completions"),
        ({"task_id": ["only one"]}, "column task_id has 1 values for 2 completions"),
        ({"raw_output_metric": [None]}, "column raw_output_metric has 1 values for 2 completions"),
        (
            {"output_type": ["JSON", "JSONL"]},
            "structeval_reward row 1: .*unknown output_type 'JSONL'",
        ),
        ({"completions": [[{"role": "user", "content": "x"}]] * 2}, "no assistant message"),
    ],
    ids=["prompts", "task_id", "raw_output_metric", "bad row", "no assistant"],
)
def test_mismatched_or_bad_batches_fail_clearly(change: dict[str, Any], message: str) -> None:
    task = next(t for t in PER_FORMAT if t.output_type == "JSON")
    keywords = {**batch(dataset_rows([task]) * 2, ["{}", "{}"], conversational=True), **change}
    with pytest.raises(ValueError, match=message):
        structeval_reward(**keywords)


def test_a_missing_column_names_it_and_the_helper() -> None:
    keywords = batch(dataset_rows(PER_FORMAT[:1]), ["{}"], conversational=True)
    del keywords["query"], keywords["task_name"]
    with pytest.raises(ValueError, match=r"lacks the column\(s\) task_name, query; build it with"):
        structeval_reward(**keywords)


def test_a_bad_row_is_an_input_error() -> None:
    keywords = batch(dataset_rows(PER_FORMAT[:1]), ["{}"], conversational=True)
    keywords["task_name"] = ["JSON"]
    with pytest.raises(InputError, match="is not '<Input> to <Output>'"):
        structeval_reward(**keywords)


def test_names_as_trl_logs_them_and_pickling() -> None:
    assert structeval_reward.__name__ == "structeval_reward"
    assert structeval_strict_reward.__name__ == "structeval_strict_reward"
    with pytest.raises(ValueError, match="mode must be one of upstream, strict"):
        StructEvalReward(mode="lenient")  # type: ignore[arg-type]
    # TRL's async rollout worker sends reward functions to a spawned process.
    copy = pickle.loads(pickle.dumps(structeval_strict_reward))
    keywords = batch(
        dataset_rows(PER_FORMAT[:1]), [perturbations(PER_FORMAT[0])["fenced"]], conversational=True
    )
    assert copy.__name__ == "structeval_strict_reward"
    assert copy(**keywords) == structeval_strict_reward(**keywords)


# ---------------------------------------------------------------- dataset rows


def test_rows_default_to_the_bundled_set_with_the_evaluation_prompt() -> None:
    rows = dataset_rows()
    assert [row["task_id"] for row in rows] == [task.task_id for task in TASKS]
    task, row = TASKS[0], rows[0]
    assert row == {
        "prompt": [{"role": "user", "content": task.query}],
        "task_id": task.task_id,
        "task_name": task.task_name,
        "query": task.query,
        "output_type": task.output_type,
        "raw_output_metric": list(task.raw_output_metric or ()),
    }
    assert dataset_rows(BUNDLED_TASKS) == rows == dataset_rows(TASKS)
    assert dataset_rows(str(BUNDLED_TASKS), conversational=False)[0]["prompt"] == task.query


def test_rows_through_datasets_keep_lists_and_none() -> None:
    datasets = pytest.importorskip("datasets")
    bare = dataclasses.replace(PER_FORMAT[0], raw_output_metric=None)
    mixed = datasets.Dataset.from_list(dataset_rows([bare, *PER_FORMAT[1:]]))
    assert mixed[0]["raw_output_metric"] is None
    assert mixed[1]["raw_output_metric"] == list(PER_FORMAT[1].raw_output_metric or ())
    assert mixed[0]["prompt"] == [{"role": "user", "content": bare.query}]
    only_none = datasets.Dataset.from_list(dataset_rows([bare]))
    assert only_none[0]["raw_output_metric"] is None
    # The reward reads the dataset's rows as it reads the helper's.
    tasks = [bare, *PER_FORMAT[1:]]
    texts = [perturbations(task)["cut"] for task in tasks]
    rewards = structeval_reward(**batch(list(mixed), texts, conversational=True))
    assert rewards == expected_scores(tasks, texts)
