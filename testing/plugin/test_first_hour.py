"""What a new user meets in the first hour, run as the user runs it: node ids pasted back from
pytest's own output, and the messages for the usual first mistakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support import OPEN150, OPEN150_ANSWERS


def task_ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if "::" in line and "::preflight::" not in line]


@pytest.fixture
def elsewhere(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A task file and its answers outside the rootdir (the pytester directory), one answer
    broken so that one task fails."""
    folder = tmp_path_factory.mktemp("elsewhere")
    (folder / "public_150.json").write_bytes(OPEN150.read_bytes())
    answers = json.loads(OPEN150_ANSWERS.read_text("utf-8"))
    answers[1]["generation"] = "not a document"
    (folder / "inference.json").write_text(json.dumps(answers), "utf-8")
    return folder


def test_an_id_of_a_task_file_outside_the_rootdir_pastes_back(suite, elsewhere):
    options = (
        f"--tasks={elsewhere / 'public_150.json'}",
        f"--generations={elsewhere / 'inference.json'}",
    )
    listed = suite.run("--co", "-q", *options).result
    ids = task_ids(listed)
    assert len(ids) == 150 and all(" " not in i for i in ids)
    second = ids[1]
    assert second.startswith("public_150.json::") and second.endswith("-Text_to_TOML")

    run = suite.run("-q", *options, second)
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    checks = [line for line in listed.outlines if "::preflight::" in line]
    run.result.assert_outcomes(failed=1, deselected=149 + len(checks))
    task_id = json.loads(OPEN150.read_text("utf-8"))[1]["task_id"]
    assert [t["task_id"] for t in run.report["tasks"]] == [task_id]

    # --lf after a full run: exactly the failed task again.
    suite.run("-q", *options)
    again = suite.run("-q", "--lf", *options).result
    again.assert_outcomes(failed=1)
    assert second in again.stdout.str()


def test_an_id_of_the_bundled_set_pastes_back_and_names_a_short_junit_class(suite, pytester):
    options = (f"--generations={OPEN150_ANSWERS}",)
    ids = task_ids(suite.run("--co", "-q", *options).result)
    assert len(ids) == 150 and all(i.startswith("open150.json::") for i in ids)
    junit = pytester.path / "j.xml"
    run = suite.run("-q", *options, ids[5], ids[7], f"--junitxml={junit}")
    run.result.assert_outcomes(passed=2)
    cases = ET.parse(junit).getroot().iter("testcase")
    assert {(c.get("classname"), c.get("name")) for c in cases} == {
        ("open150.json", ids[5].split("::")[1]),
        ("open150.json", ids[7].split("::")[1]),
    }


def test_an_id_that_selects_nothing_is_a_usage_error(suite):
    run = suite.run("-q", f"--generations={OPEN150_ANSWERS}", "open150.json::no-such-task")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines(
        ["ERROR: not found: open150.json::no-such-task (no task or check of the task file*"]
    )


# -- messages ---------------------------------------------------------------------------------


def usage_error(suite, *args: str) -> str:
    run = suite.run("-q", *args).result
    assert run.ret == pytest.ExitCode.USAGE_ERROR, run.stdout.str()
    errors = [line for line in run.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, run.errlines  # said once
    return errors[0]


def test_a_broken_json_file_says_where_and_what(suite, tmp_path):
    broken = tmp_path / "tasks.json"
    broken.write_text(OPEN150.read_text("utf-8")[:3000], "utf-8")
    line = usage_error(suite, f"--tasks={broken}", f"--generations={OPEN150_ANSWERS}")
    assert line.startswith(f"ERROR: {broken}: task file is not valid JSON: Unterminated string")
    assert "starting at line " in line and ", column " in line and "at at" not in line


def test_a_misspelt_task_field_is_named(suite, tmp_path):
    tasks = json.loads(OPEN150.read_text("utf-8"))
    tasks[3]["ouput_type"] = tasks[3].pop("output_type")
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps(tasks), "utf-8")
    line = usage_error(suite, f"--tasks={path}", f"--generations={OPEN150_ANSWERS}")
    assert "item 3" in line and "missing output_type (the item has 'ouput_type'" in line


def test_a_competition_submission_without_tasks_says_to_pass_them(suite, tmp_path):
    submission = tmp_path / "inference.json"
    submission.write_text(json.dumps([{"task_id": "p_" + "0" * 24, "generation": "{}"}]))
    line = usage_error(suite, f"--generations={submission}")
    assert "unknown task id" in line and "--tasks=public_150.json" in line


@pytest.mark.parametrize(
    ("option", "kind"),
    [("--max-tokens=abc", "positive integer"), ("--max-drop=x", "non-negative number")],
)
def test_a_bad_option_value_names_the_kind_not_a_function(suite, option, kind):
    run = suite.run("-q", f"--generations={OPEN150_ANSWERS}", option).result
    assert run.ret == pytest.ExitCode.USAGE_ERROR
    text = run.stderr.str()
    assert f"invalid {kind} value" in text, text
    assert "_positive_int" not in text and "_non_negative_float" not in text


def test_a_model_directory_that_does_not_exist_is_a_usage_error(suite):
    line = usage_error(suite, "--model=./checkpoints/sft-3")
    assert line.startswith("ERROR: model directory ./checkpoints/sft-3 does not exist")


def test_an_uncached_hub_id_with_no_hub_reachable_fails_fast(tmp_path):
    """No retries against a hub that refuses connections: huggingface_hub's own downloads
    sleep 23 s per file before giving up, twice before the preflight speaks."""
    env = {
        **os.environ,
        "HF_ENDPOINT": "http://127.0.0.1:9",  # the discard port: connection refused
        "HF_HUB_CACHE": str(tmp_path / "hub"),
    }
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("TRANSFORMERS_OFFLINE", None)
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "--model=someone/not-cached",
            "-k",
            "open150-text-to-toml-01",
            f"--out={tmp_path / 'o'}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    seconds = time.monotonic() - started
    assert "preflight failed: model-available" in run.stdout, run.stdout[-2000:]
    assert seconds < 40, f"{seconds:.0f} s"
