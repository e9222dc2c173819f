"""Regression gating through the real plugin, replaying real submissions from ../shared/data.

Each test makes a baseline report.json with one replay, then replays (a variant of) a file
against it with ``--baseline``. Generations files are given distinct names per content: a
replay's snapshots live in a directory named after its file, and a changed output under the
same name would (rightly) fail as a snapshot change.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

TASK_ID = re.compile(r"::(p_[0-9a-f]+)-")
GARBAGE = "I cannot help with that."  # parses as no format: score 0 for every task


def task_reports(result: pytest.RunResult) -> dict[str, pytest.TestReport]:
    """task_id -> the report of its test's call phase (setup for tests skipped there)."""
    reports: dict[str, pytest.TestReport] = {}
    for report in result.reprec.getreports("pytest_runtest_logreport"):
        match = TASK_ID.search(report.nodeid)
        if match and (report.when == "call" or (report.when == "setup" and report.skipped)):
            reports[match.group(1)] = report
    return reports


def scores(report_json: dict[str, Any]) -> dict[str, float]:
    return {t["task_id"]: t["score"] for t in report_json["tasks"]}


def regressed_ids(before: dict[str, float], after: dict[str, float]) -> set[str]:
    return {t for t, s in before.items() if s >= 1.0 and after[t] < 1.0}


class Gate:
    def __init__(self, suite: Any, pytester: pytest.Pytester, shared: Path) -> None:
        self.suite = suite
        self.pytester = pytester
        self.tasks = shared / "public_150.json"
        self.inference = shared / "inference"

    def baseline(self, generations: Path) -> tuple[Path, dict[str, Any]]:
        """Replay ``generations`` and keep its report.json as a baseline file."""
        run = self.suite.run(f"--tasks={self.tasks}", f"--generations={generations}")
        report = run.report
        path = self.pytester.path / f"baseline-{generations.stem}.json"
        shutil.copy(run.out / "report.json", path)
        return path, report

    def run(self, generations: Path, baseline: Path, *args: str) -> Any:
        return self.suite.run(
            f"--tasks={self.tasks}", f"--generations={generations}", f"--baseline={baseline}", *args
        )

    def variant(self, name: str, source: Path, replace: dict[str, str]) -> Path:
        """A copy of a generations file with some tasks' generations replaced."""
        items = json.loads(source.read_text("utf-8"))
        for item in items:
            item["generation"] = replace.get(item["task_id"], item["generation"])
        path = self.pytester.path / f"{name}.json"
        path.write_text(json.dumps(items), "utf-8")
        return path


@pytest.fixture
def gate(suite, pytester: pytest.Pytester, shared_data: Path) -> Gate:
    return Gate(suite, pytester, shared_data)


# -- acceptance: the real files ------------------------------------------------------------


def test_worse_submission_against_better_baseline_fails_naming_regressions_and_drop(gate):
    baseline, before = gate.baseline(gate.inference / "scored_0.77064.json")
    run = gate.run(gate.inference / "scored_0.4827.json", baseline)
    after = run.report

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    expected = regressed_ids(scores(before), scores(after))
    assert expected  # the 0.48 file loses tasks the 0.77 file had right
    reports = task_reports(run.result)
    failed = {t for t, r in reports.items() if r.failed}
    assert failed == expected
    for task_id in expected:
        assert re.search(r"regressed from 1\.0 to \d", reports[task_id].longreprtext), task_id

    comparison = after["comparison"]
    assert comparison["dropped"] is True
    assert comparison["overall_delta"] < -0.01
    assert set(comparison["regressed"]) == expected
    assert comparison["paired"]["noise"] is False
    out = run.result.stdout.str()
    assert re.search(r"overall 0\.\d{4} -> 0\.\d{4} \(-0\.\d{4}\): DROPPED by more than 0\.01", out)
    assert f"tasks: {len(expected)} regressed" in out
    assert "regressed from 1.0: p_" in out
    html = (run.out / "report.html").read_text("utf-8")
    assert 'id="comparison"' in html and "overall dropped by more than" in html


@pytest.mark.parametrize("name", ["scored_0.4827.json", "scored_0.77064.json"])
def test_a_submission_against_its_own_report_passes(gate, name):
    generations = gate.inference / name
    baseline, before = gate.baseline(generations)
    run = gate.run(generations, baseline)

    assert run.result.ret == pytest.ExitCode.OK
    outcomes = run.result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0
    reports = task_reports(run.result)
    imperfect = {t for t, s in scores(before).items() if s < 1.0}
    assert {t for t, r in reports.items() if hasattr(r, "wasxfail")} == imperfect
    assert all(reports[t].wasxfail.startswith("known:") for t in imperfect)
    comparison = run.report["comparison"]
    assert comparison["overall_delta"] == 0.0 and comparison["dropped"] is False
    assert comparison["counts"]["same"] == 150 and comparison["paired"]["noise"] is True
    run.result.stdout.fnmatch_lines(["overall * -> * (+0.0000): within the allowed drop of 0.01"])


def test_better_submission_against_worse_baseline_fails_only_tasks_it_lost(gate):
    baseline, before = gate.baseline(gate.inference / "scored_0.4827.json")
    run = gate.run(gate.inference / "scored_0.77064.json", baseline)
    after = run.report

    expected = regressed_ids(scores(before), scores(after))
    reports = task_reports(run.result)
    assert {t for t, r in reports.items() if r.failed} == expected
    assert run.result.ret == (pytest.ExitCode.TESTS_FAILED if expected else pytest.ExitCode.OK)
    fixed = {t for t, s in scores(before).items() if s < 1.0 and scores(after)[t] >= 1.0}
    assert fixed and all(reports[t].passed for t in fixed)

    comparison = after["comparison"]
    assert comparison["overall_delta"] > 0.01 and comparison["dropped"] is False
    assert comparison["paired"]["ci_low"] > 0
    run.result.stdout.fnmatch_lines(["overall * -> * (+0.*): within the allowed drop of 0.01"])


# -- each rule, on variants of a real file -------------------------------------------------


def perfect_and_imperfect(report: dict[str, Any]) -> tuple[str, str]:
    """A task that scored 1.0 and one that scored between 0 and 1 (exclusive)."""
    perfect = next(t["task_id"] for t in report["tasks"] if t["score"] >= 1.0)
    imperfect = next(t["task_id"] for t in report["tasks"] if 0.0 < t["score"] < 1.0)
    return perfect, imperfect


def test_task_that_was_perfect_and_is_not_fails_as_regressed(gate):
    source = gate.inference / "scored_0.77064.json"
    baseline, before = gate.baseline(source)
    perfect, _ = perfect_and_imperfect(before)
    run = gate.run(gate.variant("lost-one", source, {perfect: GARBAGE}), baseline, "--max-drop=1")

    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    reports = task_reports(run.result)
    assert [t for t, r in reports.items() if r.failed] == [perfect]
    assert "regressed from 1.0 to 0.0" in reports[perfect].longreprtext
    assert run.report["comparison"]["regressed"] == [perfect]


def test_known_failure_getting_worse_is_xfail_and_fails_with_strict_regressions(gate):
    source = gate.inference / "scored_0.77064.json"
    baseline, before = gate.baseline(source)
    _, imperfect = perfect_and_imperfect(before)
    variant = gate.variant("worse-one", source, {imperfect: GARBAGE})
    base_score = scores(before)[imperfect]

    run = gate.run(variant, baseline, "--max-drop=1")
    assert run.result.ret == pytest.ExitCode.OK
    report = task_reports(run.result)[imperfect]
    assert report.wasxfail.startswith(f"worse than baseline: {round(base_score, 4)!r} -> 0.0")

    strict = gate.run(variant, baseline, "--max-drop=1", "--strict-regressions")
    assert strict.result.ret == pytest.ExitCode.TESTS_FAILED
    reports = task_reports(strict.result)
    assert [t for t, r in reports.items() if r.failed] == [imperfect]
    assert "worse than baseline:" in reports[imperfect].longreprtext


def test_overall_drop_alone_fails_the_session(gate):
    """Every imperfect task gets worse: no test fails (all xfail), the overall gate does."""
    source = gate.inference / "scored_0.77064.json"
    baseline, before = gate.baseline(source)
    worse = {t["task_id"]: GARBAGE for t in before["tasks"] if 0.0 < t["score"] < 1.0}
    variant = gate.variant("all-worse", source, worse)

    run = gate.run(variant, baseline)
    assert run.result.parseoutcomes().get("failed", 0) == 0
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    assert run.report["comparison"]["dropped"] is True
    run.result.stdout.fnmatch_lines(["overall * -> * (-0.*): DROPPED by more than 0.01"])

    lenient = gate.run(variant, baseline, "--max-drop=1")
    assert lenient.result.ret == pytest.ExitCode.OK
    assert lenient.report["comparison"]["dropped"] is False


def test_unusable_baseline_is_a_usage_error(gate, pytester):
    bad = pytester.path / "not-a-report.json"
    bad.write_text('{"tasks": []}', "utf-8")
    run = gate.run(gate.inference / "scored_0.4827.json", bad)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    run.result.stderr.fnmatch_lines([f"ERROR: baseline report {bad}: no numeric summary.overall*"])
