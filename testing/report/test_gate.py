"""Gating rules and the paired comparison, on small hand-made inputs."""

from __future__ import annotations

import json
import math

import pytest

from pytest_structeval.report.gate import (
    BaselineError,
    Comparison,
    Verdict,
    bootstrap_ci,
    compare_with_baseline,
    load_baseline,
    paired_test,
    sign_test,
    task_verdict,
)


def report(scores: dict[str, float | None], overall: float) -> dict:
    return {
        "summary": {"overall": overall},
        "tasks": [{"task_id": t, "score": s} for t, s in scores.items()],
        "meta": {"model": "base/model", "backend": "vllm", "engine_builds": 1},
    }


# -- per-task verdicts ---------------------------------------------------------------------


@pytest.mark.parametrize("strict", [False, True])
def test_perfect_now_passes(strict):
    assert task_verdict(1.0, 1.0, strict_regressions=strict) == Verdict("pass", "")
    assert task_verdict(None, 1.0, strict_regressions=strict) == Verdict("pass", "")


def test_fixed_passes_and_says_so():
    assert task_verdict(0.25, 1.0, strict_regressions=False) == Verdict(
        "pass", "fixed: 0.25 -> 1.0"
    )


@pytest.mark.parametrize("strict", [False, True])
def test_regression_from_perfect_fails(strict):
    assert task_verdict(1.0, 0.5, strict_regressions=strict) == Verdict(
        "fail", "regressed from 1.0 to 0.5"
    )
    assert task_verdict(1.0, 0.0, strict_regressions=strict).message == "regressed from 1.0 to 0.0"


def test_known_failure_not_worse_is_xfail():
    assert task_verdict(0.5, 0.5, strict_regressions=True) == Verdict(
        "xfail", "known: 0.5, same as baseline 0.5"
    )
    assert task_verdict(0.25, 0.5, strict_regressions=True) == Verdict(
        "xfail", "known: 0.5, better than baseline 0.25"
    )


def test_worse_than_baseline_is_xfail_unless_strict():
    assert task_verdict(0.75, 0.3333333, strict_regressions=False) == Verdict(
        "xfail", "worse than baseline: 0.75 -> 0.3333"
    )
    assert task_verdict(0.75, 0.3333333, strict_regressions=True) == Verdict(
        "fail", "worse than baseline: 0.75 -> 0.3333"
    )


def test_no_baseline_for_the_task_fails_plainly():
    assert task_verdict(None, 0.5, strict_regressions=False) == Verdict("fail", "")


def test_float_noise_is_not_a_change():
    assert task_verdict(1.0, 1.0 - 1e-12, strict_regressions=True).outcome == "pass"
    assert task_verdict(0.3, 0.1 + 0.2, strict_regressions=True).outcome == "xfail"
    assert task_verdict(0.3, 0.1 + 0.2, strict_regressions=True).message.startswith("known:")


# -- paired statistics ---------------------------------------------------------------------


def test_sign_test_exact_values():
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 3) == 1.0
    assert sign_test(0, 5) == pytest.approx(2 / 32)
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)
    # 10 of 10 one way: 2 / 1024.
    assert sign_test(10, 0) == pytest.approx(2 / 1024)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    diffs = [0.0] * 10 + [-1.0] * 6 + [0.5] * 4
    first = bootstrap_ci(diffs)
    assert bootstrap_ci(diffs) == first
    low, high = first
    mean = sum(diffs) / len(diffs)
    assert low < mean < high
    assert bootstrap_ci(diffs, seed=1) != first


def test_bootstrap_degenerate_inputs():
    assert bootstrap_ci([]) == (0.0, 0.0)
    assert bootstrap_ci([-0.5, -0.5, -0.5]) == (-0.5, -0.5)


def test_paired_test_counts_and_noise():
    clear = paired_test([-1.0] * 20 + [0.0] * 5)
    assert (clear.n, clear.n_better, clear.n_worse, clear.n_same) == (25, 0, 20, 5)
    assert clear.mean_delta == pytest.approx(-0.8)
    assert clear.sign_test_p == pytest.approx(2 / 2**20)
    assert not clear.noise and clear.ci_high < 0

    noisy = paired_test([1.0, -1.0, 0.5, -0.5, 0.0, 0.0])
    assert noisy.noise and noisy.sign_test_p == 1.0


# -- compare -------------------------------------------------------------------------------


BASE = report({"t1": 1.0, "t2": 1.0, "t3": 0.5, "t4": 0.5, "t5": 0.2, "t6": 0.0, "t7": 1.0}, 0.6)
NOW = {"t1": 1.0, "t2": 0.5, "t3": 1.0, "t4": 0.25, "t5": 0.4, "t6": 0.0, "t8": 1.0}


def test_compare_classifies_every_task():
    comparison = compare_with_baseline(NOW, BASE, current_overall=0.55)
    assert [(t.task_id, t.status) for t in comparison.tasks] == [
        ("t1", "same"),
        ("t2", "regressed"),
        ("t3", "fixed"),
        ("t4", "worse"),
        ("t5", "better"),
        ("t6", "same"),
        ("t8", "new"),
        ("t7", "gone"),
    ]
    by_id = {t.task_id: t for t in comparison.tasks}
    assert by_id["t2"].delta == pytest.approx(-0.5)
    assert by_id["t8"].baseline is None and by_id["t8"].delta is None
    assert by_id["t7"].current is None
    assert comparison.counts == {
        "regressed": 1,
        "fixed": 1,
        "worse": 1,
        "better": 1,
        "same": 2,
        "new": 1,
        "gone": 1,
    }
    assert comparison.regressed == ["t2"]
    assert comparison.paired.n == 6  # only tasks scored in both runs


@pytest.mark.parametrize(
    ("current", "dropped"), [(0.59, False), (0.5899, True), (0.6, False), (0.7, False)]
)
def test_overall_drop_gate(current, dropped):
    comparison = compare_with_baseline(NOW, BASE, current_overall=current, max_drop=0.01)
    assert comparison.overall_delta == pytest.approx(current - 0.6)
    assert comparison.dropped is dropped


def test_max_drop_zero_fails_any_drop():
    assert compare_with_baseline(NOW, BASE, current_overall=0.5999, max_drop=0.0).dropped
    assert not compare_with_baseline(NOW, BASE, current_overall=0.6, max_drop=0.0).dropped


def test_skipped_baseline_tasks_count_as_absent():
    base = report({"t1": 1.0, "t2": None}, 1.0)
    comparison = compare_with_baseline({"t1": 1.0, "t2": 0.0}, base, current_overall=0.5)
    assert [t.status for t in comparison.tasks] == ["same", "new"]


def test_to_dict_is_json_and_round_trips():
    comparison = compare_with_baseline(NOW, BASE, current_overall=0.55)
    data = json.loads(json.dumps(comparison.to_dict()))
    assert data["overall_delta"] == pytest.approx(-0.05)
    assert data["dropped"] is True
    assert data["regressed"] == ["t2"]
    assert data["baseline_meta"] == {"model": "base/model", "backend": "vllm"}
    assert set(data["paired"]) >= {"sign_test_p", "ci_low", "ci_high", "noise", "n", "mean_delta"}
    assert data["tasks"][1] == {
        "task_id": "t2",
        "baseline": 1.0,
        "current": 0.5,
        "delta": -0.5,
        "status": "regressed",
    }
    assert Comparison.from_dict(data) == comparison


def test_lines_summarise_delta_test_counts_and_regressions():
    many = {f"t{i}": 1.0 for i in range(15)}
    comparison = compare_with_baseline(
        {t: 0.0 for t in many}, report(many, 1.0), current_overall=0.0, max_drop=0.01
    )
    lines = comparison.lines()
    assert lines[0] == "overall 1.0000 -> 0.0000 (-1.0000): DROPPED by more than 0.01"
    assert lines[1].startswith("paired over 15 tasks: mean difference -1.0000, 95% bootstrap CI")
    assert "sign test p=6.1e-05 (0 better, 15 worse): not noise" in lines[1]
    assert lines[2] == "tasks: 15 regressed"
    assert lines[3] == "regressed from 1.0: t0, t1, t2, t3, t4, t5, t6, t7, t8, t9 (+5 more)"


def test_lines_for_an_unchanged_run():
    same = compare_with_baseline(
        {"a": 1.0, "b": 0.5}, report({"a": 1.0, "b": 0.5}, 0.75), current_overall=0.75
    )
    assert same.lines() == [
        "overall 0.7500 -> 0.7500 (+0.0000): within the allowed drop of 0.01",
        "paired over 2 tasks: mean difference +0.0000, 95% bootstrap CI [+0.0000, +0.0000], "
        "sign test p=1 (0 better, 0 worse): within noise",
        "tasks: 2 same",
    ]


# -- load_baseline -------------------------------------------------------------------------


def test_load_baseline_reads_a_report_or_its_directory(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(BASE), "utf-8")
    assert load_baseline(tmp_path / "report.json") == BASE
    assert load_baseline(tmp_path) == BASE


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "baseline report not found"),
        (
            "{not json",
            "is not valid JSON: Expecting property name enclosed in double quotes at line 1, column 2",
        ),
        ("[]", "expected a JSON object"),
        (json.dumps({"tasks": [{"task_id": "a", "score": 1}]}), "no numeric summary.overall"),
        (json.dumps({"summary": {"overall": 0.5}, "tasks": []}), "no 'tasks' list"),
        (
            json.dumps({"summary": {"overall": 0.5}, "tasks": [{"score": 1}]}),
            "tasks[0] has no string 'task_id'",
        ),
        (
            json.dumps({"summary": {"overall": 0.5}, "tasks": [{"task_id": "a", "score": 2}]}),
            "tasks[0] (a): score 2 is not in [0, 1]",
        ),
        (
            json.dumps({"summary": {"overall": 0.5}, "tasks": [{"task_id": "a", "score": 1}] * 2}),
            "tasks[1]: task_id a appears twice",
        ),
    ],
)
def test_load_baseline_errors_name_the_file_and_problem(tmp_path, content, message):
    path = tmp_path / "base.json"
    if content is not None:
        path.write_text(content, "utf-8")
    with pytest.raises(BaselineError) as info:
        load_baseline(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_sign_test_is_symmetric_and_bounded():
    for a in range(12):
        for b in range(12):
            p = sign_test(a, b)
            assert p == sign_test(b, a)
            assert 0.0 < p <= 1.0 and not math.isnan(p)


def test_baseline_overall_over_a_subset_can_be_given():
    comparison = compare_with_baseline({"t1": 1.0}, BASE, current_overall=1.0, baseline_overall=1.0)
    assert comparison.overall_baseline == 1.0 and not comparison.dropped
    assert [t.status for t in comparison.tasks][:1] == ["same"]
