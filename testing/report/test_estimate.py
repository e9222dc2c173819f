"""The competition estimate's interval and the leaderboard difference of two runs (estimate.py)."""

from __future__ import annotations

from pytest_structeval.report.estimate import (
    estimate_interval,
    leaderboard_difference,
    placeholder_upside,
)
from pytest_structeval.report.runs import Run, compare_runs
from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import Task


def test_difference_larger_than_the_narrower_half_width_is_resolved():
    # narrower interval is 0.04 wide: half-width 0.02; 0.05 apart is resolved, B higher
    line = leaderboard_difference([0.58, 0.62], [0.60, 0.70], 0.60, 0.65)
    assert line.startswith("leaderboard difference +0.0500 resolved")
    assert "B ranks higher" in line
    assert "±0.0200" in line
    line = leaderboard_difference([0.58, 0.62], [0.50, 0.60], 0.60, 0.55)
    assert "A ranks higher" in line


def test_difference_within_the_half_width_is_not_resolved():
    line = leaderboard_difference([0.55, 0.65], [0.56, 0.66], 0.60, 0.61)
    assert "within the estimate's uncertainty (±0.0500)" in line
    assert "either way" in line


def test_difference_without_an_interval_says_so():
    for a, b, x, y in ((None, [0.1, 0.2], 0.1, 0.15), ([0.1, 0.2], [0.1, 0.2], None, 0.15)):
        assert leaderboard_difference(a, b, x, y) == (
            "leaderboard difference: no estimate interval for one of the runs"
        )


def _xml_task() -> Task:
    query = 'convert.\\n\\n<code>{"museum": {"name": "M", "city": "C"}}</code>'
    return Task("t1", "JSON to XML", query, "XML")


def test_placeholder_root_credit_widens_only_the_high_end():
    task = _xml_task()
    plain = score_task(task, "<museum><name>M</name><city>C</city></museum>")
    wrapped = score_task(task, "<root><museum><name>M</name><city>C</city></museum></root>")
    weights = {"xml": 1.0}
    assert placeholder_upside([plain, plain], weights) == 0.0
    # one of two XML tasks would gain 0.8 if the grader looked through <root>
    assert placeholder_upside([plain, wrapped], weights) == 0.4
    low, high = estimate_interval([plain, wrapped], weights)
    assert low <= (plain.score + wrapped.score) / 2 == 0.6
    assert high == 1.0


def test_compare_says_whether_each_run_differs_on_the_leaderboard():
    def run(label: str, overall: float, interval: list[float] | None) -> Run:
        summary = {"overall": overall, "estimate_interval": interval, "by_format": {}}
        return Run(label, f"{label}/report.json", summary, {"t1": {"task_id": "t1", "score": 0.5}})

    lines = compare_runs(
        [run("ref", 0.60, [0.58, 0.62]), run("far", 0.70, [0.66, 0.74]), run("near", 0.61, [0.59, 0.63])]
    ).lines()
    assert any(line.startswith("far: leaderboard difference +0.1000 resolved") for line in lines)
    assert any(line.startswith("near: leaderboard difference +0.0100 within") for line in lines)
    # StructEval runs (exact scores, no interval) get no such line
    plain = compare_runs([run("ref", 0.60, None), run("b", 0.70, None)]).lines()
    assert not any("leaderboard difference" in line for line in plain)
