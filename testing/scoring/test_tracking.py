"""The competition estimate tracks the official leaderboard scores of the reference files."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from pytest_structeval.report.aggregate import summarize
from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import TaskSet

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _pearson(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=False))
    return sxy / (sum((x - mx) ** 2 for x in xs) * sum((y - my) ** 2 for y in ys)) ** 0.5


@pytest.fixture(scope="module")
def tracking() -> list[tuple[float, float]]:
    if not (DATA / "public_150.json").is_file():
        pytest.skip(f"reference data not found at {DATA}")
    tasks = TaskSet.load(DATA / "public_150.json")
    rows = []
    for path in sorted((DATA / "inference").glob("scored_*.json")):
        generations = {
            g["task_id"]: g["generation"] for g in json.loads(path.read_text(encoding="utf-8"))
        }
        summary = summarize([score_task(t, generations[t.task_id]) for t in tasks])
        assert summary["headline"] == "competition_estimate"
        rows.append((float(path.stem.split("_", 1)[1]), summary["overall"]))
    if len(rows) < 3:
        pytest.skip("too few scored files to check tracking")
    return rows


def test_pearson_r(tracking):
    assert _pearson([o for o, _ in tracking], [e for _, e in tracking]) >= 0.99


def test_mean_absolute_error(tracking):
    assert statistics.fmean(abs(o - e) for o, e in tracking) <= 0.02
