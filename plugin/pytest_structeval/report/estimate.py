"""How far the competition estimate can be from the leaderboard: its interval, and whether a
difference between two runs shows on the leaderboard (docs/scoring.md, "The interval").

The estimate cannot know two things (scoring-spec §4.2, §5.1):

* the per-format weights. The organisers average within each format and apply undisclosed
  weights; the estimate uses weights proportional to the task counts (every task worth the
  same, as upstream's mean). The other plain reading counts the five formats alike (a macro
  average); the interval spans both and every mix of them.
* the hidden key paths. Where an answer matches every derived path, a grader whose paths come
  from the same source (or the same requirements) finds them too; where it matches none, its
  structure is not the source's, and paths from that source miss it too. Where it matches only
  some, the grader's paths can credit it less (the keys it found are not among the hidden ones)
  or more (the hidden ones name what it wrote). Tasks of one kind (``task_name``) share the
  organisers' conventions, so their errors move together: per kind, the shift is taken as
  uniform between minus the key credit of its partial answers (``0.8 * keys``) and plus their
  missing credit (``0.8 * (1 - keys)``), kinds independent; the interval adds the 90% normal
  quantile of their weighted sum below and above.
* whether the grader looks through a placeholder XML document element (``<root>``, ``<code>``
  ...) around the source's root. Upstream's xmltodict parse keeps it as a path level, so paths
  written against the source's root miss everything under it, and the estimate scores it so;
  the organisers' grader is "partly modified" and might not. The credit those answers would
  earn (``TaskScore.unwrapped_key_score``) is one unknown shared by all of them, so it is added
  whole to the high end.

No constant here is fitted to the scored submissions: 1/3 is the second moment of a uniform
shift, and 1.645 the normal 95% quantile.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from ..scoring.score import KEY_WEIGHT, TaskScore
from ..tasks import FORMATS

# Two-sided 90%: 5% below the low end, 5% above the high end.
Z_90 = 1.6449


def _weighted(means: Mapping[str, float], weights: Mapping[str, float]) -> float:
    total = sum(weights[f] for f in means)
    return sum(weights[f] * m for f, m in means.items()) / total


def weight_range(
    means: Mapping[str, float], counts: Mapping[str, int], weights: Mapping[str, float]
) -> tuple[float, float]:
    """Lowest and highest format-weighted score between the two readings of the organisers'
    rule: ``weights`` (by default the task counts) and the five formats counted alike. A mix of
    the two is a weighted mean of theirs, so the ends are enough."""
    present = [f for f in means if counts.get(f, 0) and weights.get(f, 0) > 0]
    if not present:
        return (math.nan, math.nan)
    chosen = _weighted({f: means[f] for f in present}, weights)
    equal = _weighted({f: means[f] for f in present}, {f: 1.0 for f in present})
    return (min(chosen, equal), max(chosen, equal))


def path_spread(scores: Sequence[TaskScore], weights: Mapping[str, float]) -> tuple[float, float]:
    """90% half-widths (below, above) of the overall score from the hidden paths."""
    counts = {f: sum(1 for s in scores if s.output_type.lower() == f) for f in FORMATS}
    total = sum(weights.get(f, 0.0) for f in FORMATS if counts[f])
    if total <= 0:
        return (0.0, 0.0)
    down = up = 0.0
    for kind in {s.task_name for s in scores}:
        group = [s for s in scores if s.task_name == kind]
        fmt = group[0].output_type.lower()
        share = weights.get(fmt, 0.0) / total / counts[fmt]  # one task's weight in the overall
        partial = [s for s in group if s.syntax_ok and 0.0 < s.key_score < 1.0]
        below = share * sum(KEY_WEIGHT * s.key_score for s in partial)
        above = share * sum(KEY_WEIGHT * (1.0 - s.key_score) for s in partial)
        down += below**2 / 3
        up += above**2 / 3
    return (Z_90 * math.sqrt(down), Z_90 * math.sqrt(up))


def placeholder_upside(scores: Sequence[TaskScore], weights: Mapping[str, float]) -> float:
    """What the overall would gain if the grader looked through placeholder XML roots."""
    counts = {f: sum(1 for s in scores if s.output_type.lower() == f) for f in FORMATS}
    total = sum(weights.get(f, 0.0) for f in FORMATS if counts[f])
    if total <= 0:
        return 0.0
    gain = 0.0
    for s in scores:
        if s.unwrapped_key_score is None or not s.syntax_ok:
            continue
        fmt = s.output_type.lower()
        share = weights.get(fmt, 0.0) / total / counts[fmt]
        gain += share * KEY_WEIGHT * max(0.0, s.unwrapped_key_score - s.key_score)
    return gain


def estimate_interval(
    scores: Sequence[TaskScore], weights: Mapping[str, float]
) -> list[float] | None:
    """``[low, high]``: the range that holds the leaderboard score with about 90% confidence."""
    if not scores:
        return None
    counts = {f: sum(1 for s in scores if s.output_type.lower() == f) for f in FORMATS}
    means = {
        f: sum(s.score for s in scores if s.output_type.lower() == f) / counts[f]
        for f in FORMATS
        if counts[f]
    }
    low_w, high_w = weight_range(means, counts, weights)
    if math.isnan(low_w):
        return None
    below, above = path_spread(scores, weights)
    above += placeholder_upside(scores, weights)
    return [round(max(0.0, low_w - below), 4), round(min(1.0, high_w + above), 4)]


def leaderboard_difference(
    a_interval: Sequence[float] | None,
    b_interval: Sequence[float] | None,
    a_estimate: float | None = None,
    b_estimate: float | None = None,
) -> str:
    """Whether the estimate resolves the leaderboard order of runs A and B.

    The two runs share the unknown weights and hidden paths, so their errors are largely common;
    the difference is taken as resolved when it is larger than the half-width of the narrower
    interval, the part of one run's uncertainty the other cannot share.
    """
    if not a_interval or not b_interval or a_estimate is None or b_estimate is None:
        return "leaderboard difference: no estimate interval for one of the runs"
    diff = b_estimate - a_estimate
    half = min(a_interval[1] - a_interval[0], b_interval[1] - b_interval[0]) / 2
    if abs(diff) > half:
        better = "B" if diff > 0 else "A"
        return (
            f"leaderboard difference {diff:+.4f} resolved by the estimate ({better} ranks higher; "
            f"uncertainty ±{half:.4f})"
        )
    return (
        f"leaderboard difference {diff:+.4f} within the estimate's uncertainty (±{half:.4f}): "
        "the leaderboard may order these runs either way"
    )
