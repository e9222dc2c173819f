"""Task files and generation files: load, validate, normalise.

Everything later in the pipeline works on a ``TaskSet`` and never re-checks its input, so all
validation lives here and runs before any engine starts. Errors name the file and the item.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from .files import read_json

OutputType = Literal["JSON", "YAML", "TOML", "XML", "CSV"]
OUTPUT_TYPES: tuple[OutputType, ...] = get_args(OutputType)
# The same five in lower case: file extensions, pytest markers, report keys, --format-weights.
FORMATS: tuple[str, ...] = tuple(t.lower() for t in OUTPUT_TYPES)
# How a generation is read: as upstream StructEval does, or as strict competitor tooling does
# (scoring-spec §7). Declared here, beside the formats, so that settings (stdlib only: the
# standalone preflight imports it) and scoring share one definition.
ScoringMode = Literal["upstream", "strict"]
SCORING_MODES: tuple[str, ...] = get_args(ScoringMode)
TaskKind = Literal["generation", "conversion"]

# The open task set ships inside the package (built by data/build_open150.py).
BUNDLED_TASKS = Path(__file__).resolve().parent / "tasksets" / "open150.json"
# The competition's task ids (public_150.json): p_ and 24 hex digits.
COMPETITION_ID = re.compile(r"p_[0-9a-f]{24}")
TASK_FIELDS = ("task_id", "task_name", "query", "output_type", "raw_output_metric")


class InputError(ValueError):
    """A task or generations file that cannot be used; the message names file and item."""


@dataclass(frozen=True)
class Task:
    """One StructEval-T task.

    ``raw_output_metric`` is None when the file carries no key paths (the competition's
    public_150.json); the scorer then derives the expected paths from the query.
    """

    task_id: str
    task_name: str
    query: str
    output_type: OutputType
    raw_output_metric: tuple[str, ...] | None = None

    def chat_messages(self) -> list[dict[str, str]]:
        """The prompt every backend sends, as the official notebook: one user message holding
        the raw query (no system prompt, nothing appended: the competition forbids it)."""
        return [{"role": "user", "content": self.query}]

    @property
    def input_type(self) -> str:
        """``Text`` for generation tasks, else the source format (``CSV to JSON`` -> ``CSV``)."""
        return self.task_name.split(" to ", 1)[0].strip()

    @property
    def kind(self) -> TaskKind:
        return "generation" if self.input_type.lower() == "text" else "conversion"

    @property
    def fmt(self) -> str:
        """Lower-case output format, as upstream routes on it (``json``, ``yaml``, ...)."""
        return self.output_type.lower()


@dataclass(frozen=True)
class TaskSet(Sequence[Task]):
    """An ordered, validated collection of tasks with unique ids (task-file order)."""

    tasks: tuple[Task, ...]
    source: str = "<memory>"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TaskSet:
        path = Path(path)
        items = _read_json_list(path, what="task file")
        return cls.from_records(items, source=str(path))

    @classmethod
    def from_records(cls, items: Sequence[object], *, source: str = "<memory>") -> TaskSet:
        tasks: list[Task] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(items):
            task = _task_from_record(item, index=index, source=source)
            if task.task_id in seen:
                raise InputError(
                    f"{source}: item {index}: duplicate task_id {task.task_id!r} "
                    f"(first at item {seen[task.task_id]})"
                )
            seen[task.task_id] = index
            tasks.append(task)
        if not tasks:
            raise InputError(f"{source}: the task file holds no tasks")
        return cls(tuple(tasks), source)

    def __getitem__(self, index):  # type: ignore[override]
        return self.tasks[index]

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Task]:
        return iter(self.tasks)

    def by_id(self) -> dict[str, Task]:
        return {task.task_id: task for task in self.tasks}

    def first_of_each_kind(self) -> list[Task]:
        """The first task of each task kind, in file order: 19 tasks for StructEval-T, the
        subset a CPU can afford with a real model (pytest ``-m smoke``)."""
        first: dict[str, Task] = {}
        for task in self.tasks:
            first.setdefault(task.task_name, task)
        return list(first.values())


def _read_json_list(path: Path, *, what: str) -> list[object]:
    data = read_json(path, what=what, error=InputError)
    if not isinstance(data, list):
        raise InputError(f"{path}: {what} must be a JSON list, got {type(data).__name__}")
    return data


def _missing(item: Mapping[str, object], field: str) -> str:
    """``missing output_type`` and, when the record has a key that looks like a misspelling of
    it, which one."""
    if field in item:
        return f"empty {field}"
    unknown = [k for k in item if isinstance(k, str) and k not in TASK_FIELDS]
    close = difflib.get_close_matches(field, unknown, n=1, cutoff=0.75)
    return f"missing {field}" + (f" (the item has {close[0]!r}: a misspelling?)" if close else "")


def _task_from_record(item: object, *, index: int, source: str) -> Task:
    where = f"{source}: item {index}"
    if not isinstance(item, Mapping):
        raise InputError(f"{where}: expected an object, got {type(item).__name__}")
    task_id = item.get("task_id")
    if not isinstance(task_id, str) or not task_id:
        raise InputError(f"{where}: {_missing(item, 'task_id')}")
    where = f"{where} (task_id {task_id!r})"
    for field in ("task_name", "query"):
        if not isinstance(item.get(field), str) or not item[field]:
            raise InputError(f"{where}: {_missing(item, field)}")
    if "output_type" not in item:
        raise InputError(
            f"{where}: {_missing(item, 'output_type')}; expected one of {', '.join(OUTPUT_TYPES)}"
        )
    output_type = item.get("output_type")
    if output_type not in OUTPUT_TYPES:
        raise InputError(
            f"{where}: unknown output_type {output_type!r} (expected one of {', '.join(OUTPUT_TYPES)})"
        )
    if " to " not in item["task_name"]:
        raise InputError(f"{where}: task_name {item['task_name']!r} is not '<Input> to <Output>'")
    metric = item.get("raw_output_metric")
    if metric is not None and (
        not isinstance(metric, list) or not all(isinstance(p, str) for p in metric)
    ):
        raise InputError(f"{where}: raw_output_metric must be a list of strings")
    return Task(
        task_id=task_id,
        task_name=item["task_name"],
        query=item["query"],
        output_type=output_type,
        raw_output_metric=tuple(metric) if metric is not None else None,
    )


def load_generations(
    path: str | os.PathLike[str], tasks: TaskSet, *, selected: Sequence[str] | None = None
) -> dict[str, str]:
    """Read an inference.json (a list of ``{task_id, generation}``) for replay.

    Every id must belong to ``tasks``; every selected id (default: all tasks) must have a
    generation.
    """
    path = Path(path)
    items = _read_json_list(path, what="generations file")
    known = tasks.by_id()
    generations: dict[str, str] = {}
    for index, item in enumerate(items):
        where = f"{path}: item {index}"
        if not isinstance(item, Mapping):
            raise InputError(f"{where}: expected an object, got {type(item).__name__}")
        task_id = item.get("task_id")
        if not isinstance(task_id, str):
            raise InputError(f"{where}: missing task_id")
        where = f"{where} (task_id {task_id!r})"
        if task_id not in known:
            hint = ""
            if COMPETITION_ID.fullmatch(task_id) and Path(tasks.source) == BUNDLED_TASKS:
                hint = (
                    " (the default task set, the bundled open150; this id is the "
                    "competition's: pass its task file, --tasks=public_150.json)"
                )
            raise InputError(f"{where}: unknown task id, not in {tasks.source}{hint}")
        if task_id in generations:
            raise InputError(f"{where}: duplicate task_id")
        generation = item.get("generation")
        if not isinstance(generation, str):
            raise InputError(
                f"{where}: generation must be a string, got {type(generation).__name__}"
            )
        generations[task_id] = generation
    check_generations(
        path, generations, selected if selected is not None else [t.task_id for t in tasks]
    )
    return generations


def check_generations(
    path: str | os.PathLike[str], generations: Mapping[str, str], task_ids: Iterable[str]
) -> None:
    """Raise ``InputError`` when the generations read from ``path`` lack one of ``task_ids``."""
    missing = [task_id for task_id in task_ids if task_id not in generations]
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise InputError(f"{path}: no generation for {len(missing)} selected task(s): {shown}")
