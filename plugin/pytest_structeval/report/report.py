"""The run's report: a value computed from task results, and the files written from it.

One ``Report`` feeds report.json, inference.json, report.html, the terminal table and the gate.
Files are written once, at the end of the session, each to a temporary name and renamed into
place, so a crash never leaves a half-written report behind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..scoring.score import TaskScore
from ..tasks import FORMATS, TaskSet
from .aggregate import summarize


@dataclass(frozen=True)
class Report:
    """``summary`` (aggregate scores), ``tasks`` (one record per scored task, task-file order),
    ``meta`` (provenance), ``comparison`` (against a baseline, when one was given)."""

    summary: dict[str, Any]
    tasks: list[dict[str, Any]]
    meta: dict[str, Any]
    comparison: dict[str, Any] | None = None

    @classmethod
    def build(
        cls,
        records: Mapping[str, Mapping[str, Any]],
        taskset: TaskSet,
        *,
        meta: Mapping[str, Any],
        weights: Mapping[str, float] | None = None,
    ) -> Report:
        """``records``: task_id -> the task record a test produced (TaskScore.to_dict() plus
        ``generation`` and ``status``). Tasks without a record (deselected, skipped before
        generation) are left out."""
        ordered = [dict(records[t.task_id]) for t in taskset if t.task_id in records]
        scores = [TaskScore.from_dict(record) for record in ordered]
        summary = summarize(scores, weights=weights) if scores else {"n_tasks": 0, "overall": None}
        summary["status"] = _count_statuses(ordered)
        return cls(summary, ordered, dict(meta))

    def with_comparison(self, comparison: Mapping[str, Any]) -> Report:
        return Report(self.summary, self.tasks, self.meta, dict(comparison))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"summary": self.summary, "tasks": self.tasks, "meta": self.meta}
        if self.comparison is not None:
            data["comparison"] = self.comparison
        return data

    def inference(self) -> list[dict[str, str]]:
        """The competition's submission format: ``{task_id, generation}`` in task-file order."""
        return [{"task_id": r["task_id"], "generation": r["generation"]} for r in self.tasks]

    def lines(self) -> list[str]:
        """The compact terminal table: per format, per task type, then the overall score."""
        s = self.summary
        if not s.get("n_tasks"):
            return ["no task was scored"]
        out = [f"{'format':<8}{'n':>5}{'mean':>8}{'parse':>8}{'strict':>8}"]
        for fmt in FORMATS:
            row = s["by_format"][fmt]
            if row["n"]:
                out.append(
                    f"{fmt:<8}{row['n']:>5}{row['mean']:>8.3f}{row['parse_rate']:>8.2f}"
                    f"{row['strict_parse_rate']:>8.2f}"
                )
        out.append("")
        out.append(f"{'task type':<16}{'n':>5}{'mean':>8}")
        for name, row in sorted(s["by_task_type"].items()):
            out.append(f"{name:<16}{row['n']:>5}{row['mean']:>8.3f}")
        out.append("")
        headline = (
            "StructEval-T score (mean over tasks)"
            if s["headline"] == "structeval"
            else "estimated competition score (weighted per-format means)"
        )
        interval = s.get("estimate_interval")
        span = f" (90% range {interval[0]:.4f}-{interval[1]:.4f})" if interval else ""
        out.append(f"overall {s['overall']:.4f}{span}  {headline}")
        out.append(
            f"task mean {s['task_mean']:.4f}  parse rate {s['parse_rate']:.2f} "
            f"(as returned {s['strict_parse_rate']:.2f})  perfect {s['n_perfect']}/{s['n_tasks']}"
            + (f"  truncated {s['n_truncated']}" if s.get("n_truncated") else "")
        )
        return out


def _count_statuses(records: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        status = str(record.get("status", "unknown"))
        counts[status] = counts.get(status, 0) + 1
    return counts
