"""Aggregate task scores the ways StructEval and the competition do (scoring-spec §4.2).

StructEval-T's own figure is the plain task mean. The competition averages within each output
format and then combines the five format means with undisclosed weights; ``overall`` is that
estimate whenever the paths were derived rather than given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from statistics import fmean

from ..scoring.score import TaskScore
from ..tasks import FORMATS
from .estimate import estimate_interval

# Weights proportional to each format's task count in public_150.json (JSON 50, YAML 35,
# TOML 25, XML 20, CSV 20), so the overall equals the plain task mean. The organisers only say
# "averaging the score within each format and then applying their own weights" (spec §4.2);
# count weights are the reading that keeps every task worth the same, as the upstream CLI does.
# The weights are not fitted: with derived paths matched as upstream does (XML root and list
# tokens per xmltodict, conversions to CSV checking every source row; expected.py, score.py)
# the five scored submissions in ../shared/data track the official scores at Pearson r 0.992,
# MAE 0.017 (bench/bench_scoring.py prints the table).
DEFAULT_FORMAT_WEIGHTS: Mapping[str, float] = {
    "json": 50.0,
    "yaml": 35.0,
    "toml": 25.0,
    "xml": 20.0,
    "csv": 20.0,
}


# What the overall score is, by summary.headline: the terminal and report.html say the same.
HEADLINE_LABELS = {
    "structeval": "StructEval-T score (mean over tasks)",
    "competition_estimate": "estimated competition score (weighted per-format means)",
}

def _mean(values: Sequence[float]) -> float | None:
    return round(fmean(values), 6) if values else None


def format_weighted(
    by_format: Mapping[str, float | None], weights: Mapping[str, float]
) -> float | None:
    """Weighted mean of per-format means; formats without tasks drop out of the weighting."""
    pairs = [(weights.get(fmt, 0.0), mean) for fmt, mean in by_format.items() if mean is not None]
    total = sum(w for w, _ in pairs)
    if total <= 0:
        return None
    return round(sum(w * m for w, m in pairs) / total, 6)


def summarize(
    scores: Sequence[TaskScore], *, weights: Mapping[str, float] | None = None
) -> dict[str, object]:
    weights = {
        k.lower(): v for k, v in (DEFAULT_FORMAT_WEIGHTS if weights is None else weights).items()
    }
    for fmt, weight in weights.items():
        if weight < 0:
            raise ValueError(f"format weight for {fmt} must be >= 0, got {weight}")
    by_format: dict[str, dict[str, object]] = {}
    means: dict[str, float | None] = {}
    for fmt in FORMATS:
        group = [s for s in scores if s.output_type.lower() == fmt]
        means[fmt] = _mean([s.score for s in group])
        by_format[fmt] = {
            "n": len(group),
            "mean": means[fmt],
            "parse_rate": _mean([float(s.syntax_ok) for s in group]),
            "strict_parse_rate": _mean([float(s.strict_ok) for s in group]),
        }
    by_task_type: dict[str, dict[str, object]] = {}
    for name in sorted({s.task_name for s in scores}):
        group = [s.score for s in scores if s.task_name == name]
        by_task_type[name] = {"n": len(group), "mean": _mean(group)}
    by_kind: dict[str, dict[str, object]] = {}
    for kind in ("generation", "conversion"):
        group = [s.score for s in scores if s.kind == kind]
        by_kind[kind] = {"n": len(group), "mean": _mean(group)}
    task_mean = _mean([s.score for s in scores])
    weighted = format_weighted(means, weights)
    structeval = bool(scores) and all(s.paths_source == "task" for s in scores)
    return {
        "overall": task_mean if structeval else weighted,
        "headline": "structeval" if structeval else "competition_estimate",
        # the range that holds the leaderboard score with about 90% confidence (estimate.py);
        # None where the paths are the task's own and the score is exact
        "estimate_interval": None if structeval else estimate_interval(scores, weights),
        "task_mean": task_mean,
        "format_weighted": weighted,
        "weights": weights,
        "by_format": by_format,
        "by_task_type": by_task_type,
        "by_kind": by_kind,
        "parse_rate": _mean([float(s.syntax_ok) for s in scores]),
        "strict_parse_rate": _mean([float(s.strict_ok) for s in scores]),
        "n_tasks": len(scores),
        "n_perfect": sum(1 for s in scores if s.perfect),
        "n_truncated": sum(1 for s in scores if s.truncated),
    }
