"""Bad task or generations files stop the session before any test or engine: exit 4, one
``ERROR:`` line naming the file and the item, no traceback."""

from __future__ import annotations

import json

import pytest

GOOD_TASK = {"task_id": "t1", "task_name": "Text to JSON", "query": "q", "output_type": "JSON"}
OTHER_TASK = {**GOOD_TASK, "task_id": "t2", "task_name": "CSV to YAML", "output_type": "YAML"}


def run_bad(suite, pytester, *, tasks=None, generations=None, extra=()):
    args = []
    if tasks is not None:
        path = pytester.path / "tasks.json"
        path.write_text(tasks if isinstance(tasks, str) else json.dumps(tasks), "utf-8")
        args.append(f"--tasks={path}")
    if generations is not None:
        path = pytester.path / "gens.json"
        path.write_text(
            generations if isinstance(generations, str) else json.dumps(generations), "utf-8"
        )
        args.append(f"--generations={path}")
    run = suite.run(*args, *extra, subprocess=True)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in run.result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, run.result.errlines
    assert "Traceback" not in run.result.stderr.str() + run.result.stdout.str()
    assert not (suite.out / "report.json").exists()
    return errors[0]


@pytest.mark.parametrize(
    ("tasks", "expected"),
    [
        ("{not json", "tasks.json: task file is not valid JSON"),
        (json.dumps({"task_id": "t1"}), "tasks.json: task file must be a JSON list"),
        ([GOOD_TASK, {k: v for k, v in GOOD_TASK.items() if k != "task_id"}], "item 1: missing"),
        ([GOOD_TASK, GOOD_TASK], "item 1: duplicate task_id 't1'"),
        ([{**GOOD_TASK, "output_type": "INI"}], "item 0 (task_id 't1'): unknown output_type 'INI'"),
    ],
    ids=["not-json", "not-a-list", "missing-task-id", "duplicate-task-id", "unknown-output-type"],
)
def test_bad_task_file(suite, pytester, tasks, expected):
    assert expected in run_bad(suite, pytester, tasks=tasks)


@pytest.mark.parametrize(
    ("generations", "expected"),
    [
        ("[{", "gens.json: generations file is not valid JSON"),
        ('{"t1": "x"}', "gens.json: generations file must be a JSON list"),
        (
            [{"task_id": "t1", "generation": 3}, {"task_id": "t2", "generation": ""}],
            "item 0 (task_id 't1'): generation must be a string",
        ),
        (
            [{"task_id": "t1", "generation": "{}"}, {"task_id": "zz", "generation": ""}],
            "item 1 (task_id 'zz'): unknown task id",
        ),
        ([{"task_id": "t1", "generation": "{}"}], "no generation for 1 selected task(s): t2"),
    ],
    ids=["not-json", "not-a-list", "not-a-string", "unknown-id", "missing-selected"],
)
def test_bad_generations_file(suite, pytester, generations, expected):
    message = run_bad(suite, pytester, tasks=[GOOD_TASK, OTHER_TASK], generations=generations)
    assert expected in message


def test_missing_generations_only_matter_for_selected_tasks(suite, pytester):
    (pytester.path / "tasks.json").write_text(json.dumps([GOOD_TASK, OTHER_TASK]), "utf-8")
    (pytester.path / "gens.json").write_text(
        json.dumps([{"task_id": "t1", "generation": "{}"}]), "utf-8"
    )
    run = suite.run("--tasks=tasks.json", "--generations=gens.json", "-m", "json")
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED  # "{}" is falsy: scored 0, not an error
    assert [t["task_id"] for t in run.report["tasks"]] == ["t1"]


def test_bad_baseline_is_a_usage_error(suite, pytester):
    (pytester.path / "base.json").write_text("[1, 2", "utf-8")
    message = run_bad(
        suite,
        pytester,
        tasks=[GOOD_TASK],
        generations=[{"task_id": "t1", "generation": "{}"}],
        extra=("--baseline=base.json",),
    )
    assert "base.json" in message
