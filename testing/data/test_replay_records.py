"""Replaying a generations file gives the report.json summary and tasks recorded in
testing/data/replay_records/ (made by make_replay_records.py, whose docstring says how to
regenerate them after a change meant to move scores). The bundled reference answers always
run; the real submissions in ../shared/data/inference/ where that directory is present."""

from __future__ import annotations

import json
from typing import Any

import pytest
from make_replay_records import (
    BUNDLED,
    RECORDS,
    SHARED_INFERENCE,
    SHARED_TASKS,
    Source,
    bundled_source,
    record_of,
    replay,
    shared_source,
)

RECORDED = sorted(path.stem for path in RECORDS.glob("*.json"))
REGENERATE = "python testing/data/make_replay_records.py"


def source_of(name: str) -> Source:
    source = bundled_source() if name == BUNDLED else shared_source(name)
    if source.shared and not (SHARED_TASKS.exists() and source.generations.exists()):
        pytest.skip(f"{source.generations} is not present in this checkout")
    return source


def load_record(source: Source) -> dict[str, Any]:
    return json.loads(source.record_path.read_text("utf-8"))


def test_the_bundled_answers_and_every_shared_file_have_a_record() -> None:
    assert BUNDLED in RECORDED
    if not SHARED_TASKS.exists():
        pytest.skip("../shared/data is not present in this checkout")
    missing = sorted({path.stem for path in SHARED_INFERENCE.glob("*.json")} - set(RECORDED))
    assert not missing, f"no record for {missing}: run `{REGENERATE} {' '.join(missing)}`"


@pytest.mark.parametrize("name", RECORDED)
def test_replay_gives_the_recorded_summary_and_tasks(name: str) -> None:
    source = source_of(name)
    recorded = load_record(source)
    now = record_of(source, replay(source))
    assert now["inputs"] == recorded["inputs"], (
        f"an input of {source.record_path.name} changed since it was recorded; "
        f"if that is meant, run `{REGENERATE} {name}`"
    )
    hint = f"if the change is meant, run `{REGENERATE} {name}` and review the diff"
    assert len(now["tasks"]) == len(recorded["tasks"]), hint
    changed = [
        (before, after)
        for before, after in zip(recorded["tasks"], now["tasks"], strict=True)
        if before != after
    ]
    if changed:
        before, after = changed[0]
        fields = {
            key: (before.get(key), after.get(key))
            for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)
        }
        pytest.fail(
            f"{len(changed)} tasks differ from the record; the first, {before['task_id']}, "
            f"in (recorded, now): {fields}; {hint}"
        )
    assert now["summary"] == recorded["summary"], hint


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return []


@pytest.mark.parametrize("name", RECORDED)
def test_a_record_quotes_no_answer(name: str) -> None:
    """The shared answers are not ours to copy into the project: no string of a task's record
    but short ones (a parser's message) and key paths (an answer may spell one out, as TOML's
    dotted keys do) is a piece of that task's answer."""
    source = source_of(name)
    answers = {
        item["task_id"]: item["generation"]
        for item in json.loads(source.generations.read_text("utf-8"))
    }
    recorded = load_record(source)["tasks"]
    assert len(recorded) == len(answers)
    quoted = [
        (task["task_id"], text)
        for task in recorded
        for text in strings({k: v for k, v in task.items() if k != "missing_paths"})
        if len(text) >= 24 and text in answers[task["task_id"]]
    ]
    assert not quoted, f"{len(quoted)} strings copy an answer, e.g. {quoted[0]}"
