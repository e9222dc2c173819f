"""Regression gating against a baseline report.json: per-task verdicts and a paired comparison.

A regression has pytest's meaning: a test that passed before (score 1.0) and fails now. Tasks
that failed in both runs are expected failures; getting worse among them is reported, and fails
only with ``--strict-regressions``. The overall score gets its own gate (``max_drop``), and a
paired test over the per-task differences says whether a change is larger than noise.

Pure: no pytest import, so the same functions serve the plugin, scripts and tests.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..files import read_json
from ..scoring.score import TaskScore
from ..settings import Gate
from .aggregate import summarize
from .estimate import leaderboard_difference

Outcome = Literal["pass", "fail", "xfail"]
DeltaStatus = Literal["regressed", "fixed", "worse", "better", "same", "new", "gone"]
STATUSES: tuple[DeltaStatus, ...] = ("regressed", "fixed", "worse", "better", "same", "new", "gone")

# Scores are means of fractions; closer than this counts as equal (and as 1.0).
EPS = 1e-9
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20250520  # fixed: the same two reports always give the same interval
CONFIDENCE = 0.95
MAX_LISTED = 10
_META_KEYS = ("model", "adapter", "backend", "generations")


class BaselineError(ValueError):
    """A baseline report that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    message: str


def fmt_score(value: float) -> str:
    """``1.0``, ``0.5``, ``0.3333``: four decimals at most, always with a decimal point."""
    return repr(round(float(value), 4))


def _perfect(score: float) -> bool:
    return score >= 1.0 - EPS


def task_verdict(baseline: float | None, current: float, *, strict_regressions: bool) -> Verdict:
    """The outcome of one task's test given its baseline score (None: no baseline for it).

    - now 1.0: pass;
    - no baseline: ``fail`` with an empty message when below 1.0 (the caller gives the
      scorer's reason);
    - baseline 1.0, now below: fail, ``regressed from 1.0 to x``;
    - below 1.0 in both: xfail, ``known: …`` when not worse, ``worse than baseline: b -> x``
      when worse (a failure with ``strict_regressions``).
    """
    if _perfect(current):
        if baseline is not None and not _perfect(baseline):
            return Verdict("pass", f"fixed: {fmt_score(baseline)} -> 1.0")
        return Verdict("pass", "")
    if baseline is None:
        return Verdict("fail", "")
    if _perfect(baseline):
        return Verdict("fail", f"regressed from 1.0 to {fmt_score(current)}")
    if current < baseline - EPS:
        message = f"worse than baseline: {fmt_score(baseline)} -> {fmt_score(current)}"
        return Verdict("fail" if strict_regressions else "xfail", message)
    change = "better than" if current > baseline + EPS else "same as"
    return Verdict("xfail", f"known: {fmt_score(current)}, {change} baseline {fmt_score(baseline)}")


def delta_status(baseline: float | None, current: float | None) -> DeltaStatus:
    if baseline is None:
        return "new"
    if current is None:
        return "gone"
    if _perfect(baseline) and not _perfect(current):
        return "regressed"
    if _perfect(current) and not _perfect(baseline):
        return "fixed"
    if current < baseline - EPS:
        return "worse"
    if current > baseline + EPS:
        return "better"
    return "same"


@dataclass(frozen=True)
class TaskDelta:
    task_id: str
    baseline: float | None
    current: float | None
    delta: float | None
    status: DeltaStatus

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "baseline": self.baseline,
            "current": self.current,
            "delta": self.delta,
            "status": self.status,
        }


@dataclass(frozen=True)
class PairedTest:
    """Paired comparison over the tasks scored in both runs (differences = current - baseline).

    ``sign_test_p``: exact two-sided sign test over the nonzero differences (1.0 when there are
    none). ``ci_low``/``ci_high``: percentile bootstrap interval of the mean difference, from
    ``resamples`` resamples of the tasks with a fixed seed. ``noise``: the interval covers 0.
    """

    n: int
    n_better: int
    n_worse: int
    mean_delta: float
    sign_test_p: float
    ci_low: float
    ci_high: float
    confidence: float = CONFIDENCE
    resamples: int = BOOTSTRAP_RESAMPLES
    seed: int = BOOTSTRAP_SEED

    @property
    def n_same(self) -> int:
        return self.n - self.n_better - self.n_worse

    @property
    def noise(self) -> bool:
        return self.ci_low <= 0.0 <= self.ci_high

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "n_better": self.n_better,
            "n_worse": self.n_worse,
            "n_same": self.n_same,
            "mean_delta": self.mean_delta,
            "sign_test_p": self.sign_test_p,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "confidence": self.confidence,
            "resamples": self.resamples,
            "seed": self.seed,
            "noise": self.noise,
        }


def sign_test(n_positive: int, n_negative: int) -> float:
    """Exact two-sided sign test p-value (binomial, p = 1/2) for the nonzero differences."""
    n = n_positive + n_negative
    if n == 0:
        return 1.0
    k = min(n_positive, n_negative)
    tail = sum(math.comb(n, i) for i in range(k + 1))
    return min(1.0, 2 * tail / 2**n)


def bootstrap_ci(
    diffs: list[float],
    *,
    resamples: int = BOOTSTRAP_RESAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``diffs`` (paired: tasks are resampled)."""
    n = len(diffs)
    if n == 0:
        return 0.0, 0.0
    if all(d == diffs[0] for d in diffs):
        return diffs[0], diffs[0]
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(diffs, k=n)) / n for _ in range(resamples))
    alpha = (1.0 - confidence) / 2
    return means[int(alpha * resamples)], means[math.ceil((1.0 - alpha) * resamples) - 1]


def paired_test(diffs: list[float], **bootstrap: Any) -> PairedTest:
    n_better = sum(1 for d in diffs if d > EPS)
    n_worse = sum(1 for d in diffs if d < -EPS)
    low, high = bootstrap_ci(diffs, **bootstrap)
    return PairedTest(
        n=len(diffs),
        n_better=n_better,
        n_worse=n_worse,
        mean_delta=math.fsum(diffs) / len(diffs) if diffs else 0.0,
        sign_test_p=sign_test(n_better, n_worse),
        ci_low=low,
        ci_high=high,
        **bootstrap,
    )


@dataclass(frozen=True)
class Comparison:
    """This run against a baseline report: what report.json, the summary and the HTML show."""

    tasks: tuple[TaskDelta, ...]
    overall_baseline: float
    overall_current: float
    max_drop: float
    paired: PairedTest
    baseline_meta: Mapping[str, Any] = field(default_factory=dict)
    # the competition estimate's 90% ranges (summary.estimate_interval); None for StructEval runs
    interval_baseline: Sequence[float] | None = None
    interval_current: Sequence[float] | None = None

    @property
    def overall_delta(self) -> float:
        return self.overall_current - self.overall_baseline

    @property
    def dropped(self) -> bool:
        """The overall score fell by more than ``max_drop`` (rounded: 0.01 is not > 0.01)."""
        return round(self.overall_delta, 9) < -self.max_drop

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for t in self.tasks:
            counts[t.status] += 1
        return counts

    def ids(self, status: DeltaStatus) -> list[str]:
        return [t.task_id for t in self.tasks if t.status == status]

    @property
    def regressed(self) -> list[str]:
        return self.ids("regressed")

    def to_dict(self) -> dict[str, Any]:
        return {
            "overall_baseline": self.overall_baseline,
            "overall_current": self.overall_current,
            "overall_delta": self.overall_delta,
            "max_drop": self.max_drop,
            "dropped": self.dropped,
            "paired": self.paired.to_dict(),
            "counts": self.counts,
            "regressed": self.regressed,
            "baseline_meta": dict(self.baseline_meta),
            "tasks": [t.to_dict() for t in self.tasks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Comparison:
        """Inverse of ``to_dict`` (derived fields such as ``dropped`` are recomputed)."""
        paired = data["paired"]
        return cls(
            tasks=tuple(
                TaskDelta(t["task_id"], t["baseline"], t["current"], t["delta"], t["status"])
                for t in data["tasks"]
            ),
            overall_baseline=float(data["overall_baseline"]),
            overall_current=float(data["overall_current"]),
            max_drop=float(data["max_drop"]),
            paired=PairedTest(
                n=paired["n"],
                n_better=paired["n_better"],
                n_worse=paired["n_worse"],
                mean_delta=paired["mean_delta"],
                sign_test_p=paired["sign_test_p"],
                ci_low=paired["ci_low"],
                ci_high=paired["ci_high"],
                confidence=paired["confidence"],
                resamples=paired["resamples"],
                seed=paired["seed"],
            ),
            baseline_meta=dict(data.get("baseline_meta") or {}),
        )

    def lines(self) -> list[str]:
        """The terminal summary: overall delta and gate, paired test, counts, regressed ids."""
        p = self.paired
        gate = (
            f"DROPPED by more than {fmt_score(self.max_drop)}"
            if self.dropped
            else f"within the allowed drop of {fmt_score(self.max_drop)}"
        )
        lines = [
            f"overall {self.overall_baseline:.4f} -> {self.overall_current:.4f} "
            f"({self.overall_delta:+.4f}): {gate}",
            f"paired over {p.n} tasks: mean difference {p.mean_delta:+.4f}, "
            f"{p.confidence:.0%} bootstrap CI [{p.ci_low:+.4f}, {p.ci_high:+.4f}], "
            f"sign test p={p.sign_test_p:.3g} ({p.n_better} better, {p.n_worse} worse): "
            + ("within noise" if p.noise else "not noise"),
            "tasks: " + ", ".join(f"{n} {status}" for status, n in self.counts.items() if n),
        ]
        if self.interval_baseline and self.interval_current:
            lines.append(
                leaderboard_difference(
                    self.interval_baseline,
                    self.interval_current,
                    self.overall_baseline,
                    self.overall_current,
                )
            )
        regressed = self.regressed
        if regressed:
            shown = ", ".join(regressed[:MAX_LISTED])
            more = f" (+{len(regressed) - MAX_LISTED} more)" if len(regressed) > MAX_LISTED else ""
            lines.append(f"regressed from 1.0: {shown}{more}")
        return lines


@dataclass(frozen=True)
class GateVerdict:
    """The run's one verdict, as its exit status gives it: ``passed``, or ``failed`` with the
    reasons (the overall score dropped, tasks failed or regressed, the preflight blocked the
    run, ...). Snapshot changes are no reason: they are reported, never judged."""

    passed: bool
    reasons: tuple[str, ...]
    detail: str = ""  # what a passed verdict says: the overall score, against the baseline

    @property
    def verdict(self) -> Literal["passed", "failed"]:
        return "passed" if self.passed else "failed"

    def with_reason(self, reason: str) -> GateVerdict:
        """A reason the report does not know (a blocked preflight, reports not written)."""
        return GateVerdict(False, (*self.reasons, reason))

    def line(self) -> str:
        """``structeval gate: passed (...)`` or ``structeval gate: FAILED: reason; reason``."""
        if self.passed:
            return "structeval gate: passed" + (f" ({self.detail})" if self.detail else "")
        return "structeval gate: FAILED: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reasons": list(self.reasons)}


def gate_verdict(
    overall: float | None, statuses: Mapping[str, int], comparison: Comparison | None
) -> GateVerdict:
    """The verdict of a run from its overall score, its tasks' test outcomes and its baseline
    comparison: it fails when the overall dropped by more than ``max_drop`` or a task's test
    failed (without a baseline, any imperfect task; with one, regressions)."""
    reasons = []
    if comparison is not None and comparison.dropped:
        reasons.append(
            f"overall {comparison.overall_current:.4f} dropped "
            f"{-comparison.overall_delta:.4f} from {comparison.overall_baseline:.4f} "
            f"(max drop {fmt_score(comparison.max_drop)})"
        )
    failed = statuses.get("failed", 0)
    if failed:
        regressed = len(comparison.regressed) if comparison is not None else 0
        if comparison is not None and regressed == failed:
            reasons.append(f"{_tasks(failed)} regressed")
        elif regressed:
            reasons.append(f"{_tasks(failed)} failed ({regressed} regressed from 1.0)")
        else:
            reasons.append(f"{_tasks(failed)} failed")
    if reasons:
        return GateVerdict(False, tuple(reasons))
    if comparison is not None:
        detail = (
            f"overall {comparison.overall_current:.4f} vs baseline "
            f"{comparison.overall_baseline:.4f}, {comparison.overall_delta:+.4f}; no regression"
        )
    elif overall is not None:
        detail = f"overall {overall:.4f}; no task failed"
    else:
        detail = "no task was scored"
    return GateVerdict(True, (), detail)


def _tasks(n: int) -> str:
    return f"{n} task" if n == 1 else f"{n} tasks"


def baseline_scores(baseline_report: Mapping[str, Any]) -> dict[str, float]:
    """task_id -> score of a baseline report; tasks without a score (skipped) are left out."""
    return {
        str(t["task_id"]): float(t["score"])
        for t in baseline_report.get("tasks", [])
        if t.get("score") is not None
    }


def compare_with_baseline(
    current_tasks: Mapping[str, float],
    baseline_report: Mapping[str, Any],
    *,
    current_overall: float,
    max_drop: float = Gate.max_drop,
    baseline_overall: float | None = None,
    current_interval: Sequence[float] | None = None,
) -> Comparison:
    """Compare this run's per-task scores (task-file order) with a loaded baseline report.

    Tasks only in this run are ``new``, only in the baseline ``gone`` (listed last); the paired
    test uses the tasks scored in both. ``baseline_overall`` defaults to the report's
    ``summary.overall``; when this run scored a subset (``-k``/``-m``), pass the baseline's
    overall over the same tasks, computed as ``current_overall`` was, or the drop compares a
    subset with the whole set.
    """
    base = baseline_scores(baseline_report)
    deltas = [
        TaskDelta(
            task_id,
            base.get(task_id),
            float(score),
            None if task_id not in base else float(score) - base[task_id],
            delta_status(base.get(task_id), float(score)),
        )
        for task_id, score in current_tasks.items()
    ]
    deltas += [
        TaskDelta(task_id, score, None, None, "gone")
        for task_id, score in base.items()
        if task_id not in current_tasks
    ]
    meta = baseline_report.get("meta") or {}
    return Comparison(
        tasks=tuple(deltas),
        overall_baseline=float(
            baseline_report["summary"]["overall"] if baseline_overall is None else baseline_overall
        ),
        overall_current=float(current_overall),
        max_drop=max_drop,
        paired=paired_test([d.delta for d in deltas if d.delta is not None]),
        baseline_meta={k: meta[k] for k in _META_KEYS if meta.get(k) is not None},
        interval_baseline=(
            baseline_report["summary"].get("estimate_interval")
            if baseline_overall is None
            else None
        ),
        interval_current=current_interval,
    )


def baseline_over(
    baseline_report: Mapping[str, Any],
    task_ids: Collection[str],
    *,
    weights: Mapping[str, float] | None = None,
) -> tuple[dict[str, Any], float | None]:
    """Compare like with like: a baseline report narrowed to ``task_ids`` (the tasks this run
    scored, when it ran a subset of the task file) and its overall recomputed over them the
    way this run's was (None when none of them has a score)."""
    kept = [t for t in baseline_report.get("tasks", []) if t["task_id"] in task_ids]
    # The baseline's records are JSON from disk: read back into scores once, here.
    scored = [TaskScore.from_dict(t) for t in kept if t.get("score") is not None]
    overall = summarize(scored, weights=weights)["overall"] if scored else None
    return {**baseline_report, "tasks": kept}, overall  # type: ignore[return-value]


def read_report(
    path: str | os.PathLike[str], *, what: str, hint: str, error: type[ValueError]
) -> tuple[Path, dict[str, Any]]:
    """The path and content of a report.json (a directory means its ``report.json``) that holds
    a JSON object; else ``error`` naming ``what`` and the file, ending with ``hint``."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    report = read_json(path, what=what, error=error)
    if not isinstance(report, dict):
        raise error(f"{what} {path}: expected a JSON object; {hint}")
    return path, report


def task_records(
    tasks: list[Any], *, source: str, error: type[ValueError]
) -> dict[str, dict[str, Any]]:
    """task_id -> record of a report's ``tasks`` list, in its order. Every record needs a
    unique string ``task_id`` and a score in [0, 1] or null; else ``error`` is raised, its
    message starting with ``source`` (``"<what> <path>"``)."""
    records: dict[str, dict[str, Any]] = {}
    for index, record in enumerate(tasks):
        where = f"{source}: tasks[{index}]"
        if not isinstance(record, dict) or not isinstance(record.get("task_id"), str):
            raise error(f"{where} has no string 'task_id'")
        task_id = record["task_id"]
        if task_id in records:
            raise error(f"{where}: task_id {task_id} appears twice")
        score = record.get("score")
        if score is not None and not (is_number(score) and 0.0 <= score <= 1.0):
            raise error(f"{where} ({task_id}): score {score!r} is not in [0, 1]")
        records[task_id] = record
    return records


def load_baseline(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a baseline report.json (a directory means its ``report.json``).

    Raises ``BaselineError`` naming the file and what is wrong with it.
    """
    hint = "pass the report.json written to --out by an earlier run"
    path, report = read_report(path, what="baseline report", hint=hint, error=BaselineError)
    summary = report.get("summary")
    overall = summary.get("overall") if isinstance(summary, dict) else None
    if not is_number(overall):
        raise BaselineError(f"baseline report {path}: no numeric summary.overall; {hint}")
    tasks = report.get("tasks")
    if not isinstance(tasks, list) or not tasks:
        raise BaselineError(f"baseline report {path}: no 'tasks' list; {hint}")
    task_records(tasks, source=f"baseline report {path}", error=BaselineError)
    return report


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
