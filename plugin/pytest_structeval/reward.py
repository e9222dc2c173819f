"""The StructEval score as a training reward: TRL's ``GRPOTrainer`` reward function and its dataset.

``dataset_rows(tasks)`` turns a task file into training rows: the prompt the evaluation sends
(one user message holding the raw query, or the query as plain text) plus the columns the
reward needs (``task_id``, ``task_name``, ``query``, ``output_type``, ``raw_output_metric``).
``structeval_reward`` scores each completion against the task rebuilt from those columns, with
``scoring.score_task``, the function the evaluation scores with, so a reward of 1.0 is a task the
evaluation passes::

    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    from pytest_structeval.reward import dataset_rows, structeval_reward

    trainer = GRPOTrainer(model=..., reward_funcs=[structeval_reward],
                          train_dataset=Dataset.from_list(dataset_rows()), args=GRPOConfig(...))

TRL (1.16, ``GRPOTrainer._calculate_rewards``) calls every reward function as
``f(prompts=..., completions=..., completion_ids=..., **columns, trainer_state=...,
log_extra=..., log_metric=...)``: each dataset column except ``prompt`` arrives as a keyword
list with one value per completion (each prompt repeated ``num_generations`` times). A
completion is a string for plain prompts and a list of messages for conversational ones, whose
last assistant message is the answer. Nothing here imports TRL, datasets or torch: the reward is
plain Python over text.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .scoring import score_task
from .settings import SCORING_MODES, ScoringMode
from .tasks import BUNDLED_TASKS, Task, TaskSet

# The dataset columns the reward rebuilds a task from; ``raw_output_metric`` may be None per row
# (the scorer then derives the expected paths from the query, as the evaluation does).
TASK_COLUMNS = ("task_id", "task_name", "query", "output_type", "raw_output_metric")
_REQUIRED_COLUMNS = ("task_id", "task_name", "query", "output_type")

Completion = str | Sequence[Mapping[str, Any]]


def dataset_rows(
    tasks: TaskSet | Sequence[Task] | str | os.PathLike[str] | None = None,
    *,
    conversational: bool = True,
) -> list[dict[str, Any]]:
    """One training row per task (default: the bundled open set), for ``Dataset.from_list``.

    ``prompt`` is TRL's conversational format (``[{"role": "user", "content": query}]``, rendered
    through the model's chat template by the trainer), or with ``conversational=False`` the raw
    query as plain text (TRL's standard format, for models without a chat template). The other
    columns are what ``structeval_reward`` rebuilds the task from; ``raw_output_metric`` is a list
    of strings or None (datasets stores None as null in a list-of-strings column, and a column
    that is None in every row as type null, which reads back as None as well).
    """
    if tasks is None or isinstance(tasks, (str, os.PathLike)):
        taskset = TaskSet.load(BUNDLED_TASKS if tasks is None else tasks)
    elif isinstance(tasks, TaskSet):
        taskset = tasks
    else:
        taskset = TaskSet(tuple(tasks))
    return [
        {
            "prompt": task.chat_messages() if conversational else task.query,
            "task_id": task.task_id,
            "task_name": task.task_name,
            "query": task.query,
            "output_type": task.output_type,
            "raw_output_metric": (
                list(task.raw_output_metric) if task.raw_output_metric is not None else None
            ),
        }
        for task in taskset
    ]


def completion_text(completion: Completion) -> str:
    """The answer in a TRL completion: the string itself, or the last assistant message's content.

    A conversational completion holds one assistant message, or several when the trainer ran
    tools (assistant, tool, assistant...); the final answer is the last assistant turn. A message
    whose content is None (a tool call with no text) answers nothing: "".
    """
    if isinstance(completion, str):
        return completion
    for message in reversed(completion):
        if message.get("role") == "assistant":
            content = message.get("content")
            if content is None:
                return ""
            if not isinstance(content, str):
                raise TypeError(
                    f"assistant message content must be a string, got {type(content).__name__}"
                )
            return content
    roles = [message.get("role") for message in completion]
    raise ValueError(f"conversational completion has no assistant message (roles: {roles})")


class StructEvalReward:
    """A TRL reward function: the StructEval score of each completion, a float in [0, 1].

    ``score = round(0.2 * syntax + 0.8 * keys, 2)``, exactly ``score_task(task, text,
    mode=mode).score`` for the task in the row; a row whose ``task_id`` is None (another kind of
    task in a mixed dataset) gets None, which TRL reads as "this reward does not apply".

    ``mode="upstream"`` (the default) scores as StructEval and the competition do.
    ``mode="strict"`` uses the stricter parsers of competitor tooling (scoring-spec §7 item 8):
    a YAML answer must be a mapping or a list, TOML goes through ``tomllib``, CSV needs two
    columns, no ``unicode_escape`` decode. Upstream gives the syntax part (0.2) to any text YAML
    reads as a scalar, random words included, which a policy can learn to collect; strict
    mode pays nothing for that.

    A callable instance rather than a closure so that it pickles (TRL's async rollout worker sends
    reward functions to a child process); ``__name__`` is what TRL logs it under
    (``rewards/structeval_reward/mean``). When TRL passes ``log_metric``, the batch's syntax rate
    and mean key score are logged as ``<name>/syntax`` and ``<name>/keys``.
    """

    def __init__(self, *, mode: ScoringMode = "upstream") -> None:
        if mode not in SCORING_MODES:
            raise ValueError(f"mode must be one of {', '.join(SCORING_MODES)}, got {mode!r}")
        self.mode = mode
        self.__name__ = "structeval_reward" if mode == "upstream" else f"structeval_{mode}_reward"

    def __repr__(self) -> str:
        return f"StructEvalReward(mode={self.mode!r})"

    def __call__(
        self,
        prompts: Sequence[object],
        completions: Sequence[Completion],
        *,
        log_metric: Callable[[str, float], None] | None = None,
        **columns: Any,
    ) -> list[float | None]:
        """Score ``completions`` (one per row); ``columns`` are the dataset's keyword lists.

        TRL's other keywords (``completion_ids``, ``trainer_state``, ``log_extra``,
        ``environments``, any further dataset column) are accepted and not used: the score
        depends on the text and the task only.
        """
        count = len(completions)
        if len(prompts) != count:
            raise ValueError(
                f"{self.__name__}: {len(prompts)} prompts for {count} completions; "
                "expected one prompt per completion"
            )
        missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
        if missing:
            raise ValueError(
                f"{self.__name__}: the dataset lacks the column(s) {', '.join(missing)}; "
                "build it with pytest_structeval.reward.dataset_rows (columns: "
                f"{', '.join(TASK_COLUMNS)})"
            )
        metric = columns.get("raw_output_metric")
        values = {name: columns[name] for name in _REQUIRED_COLUMNS}
        values["raw_output_metric"] = [None] * count if metric is None else metric
        for name, column in values.items():
            if len(column) != count:
                raise ValueError(
                    f"{self.__name__}: column {name} has {len(column)} values for {count} "
                    "completions; expected one per completion"
                )

        rewards: list[float | None] = []
        syntax: list[bool] = []
        keys: list[float] = []
        for index, completion in enumerate(completions):
            record = {name: values[name][index] for name in TASK_COLUMNS}
            if record["task_id"] is None:
                rewards.append(None)
                continue
            # TaskSet.from_records validates the row as a task file item is validated.
            (task,) = TaskSet.from_records([record], source=f"{self.__name__} row {index}")
            result = score_task(task, completion_text(completion), mode=self.mode)
            rewards.append(result.score)
            syntax.append(result.syntax_ok)
            keys.append(result.key_score)
        if log_metric is not None and syntax:
            log_metric(f"{self.__name__}/syntax", sum(syntax) / len(syntax))
            log_metric(f"{self.__name__}/keys", sum(keys) / len(keys))
        return rewards


structeval_reward = StructEvalReward()
structeval_strict_reward = StructEvalReward(mode="strict")
