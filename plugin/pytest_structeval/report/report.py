"""The run's report: one value computed from the task results, and the files written from it.

One ``Report`` feeds report.json (``to_dict``, the JSON boundary), inference.json, report.html,
the terminal summary (``lines``) and the gate (``failed_gate``). It is built once, from typed
task results (``TaskRecord``), and holds the baseline comparison as a typed ``Comparison``.
Files are written once, at the end of the session, each to a temporary name and renamed into
place, so a crash never leaves a half-written report behind.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..files import dump_json
from ..scoring.score import TaskScore
from ..settings import Gate
from ..tasks import FORMATS, TaskSet
from .aggregate import HEADLINE_LABELS, summarize
from .gate import Comparison, GateVerdict, baseline_over, compare_with_baseline, gate_verdict
from .html import render_html


@dataclass(frozen=True)
class TaskRecord:
    """One task's entry in the report: its score, the generation, and how its test ended.

    ``status`` is the test's outcome as pytest reported it (passed, failed, xfailed, ...);
    ``verdict`` the core's judgement (pass, fail, xfail); ``snapshot`` what comparing the output
    with its stored snapshot gave (new, match, updated, changed), None when not compared."""

    score: TaskScore
    generation: str
    status: str
    prompt_tokens: int | None = None
    from_cache: bool | None = None
    snapshot: str | None = None
    verdict: str | None = None

    @property
    def task_id(self) -> str:
        return self.score.task_id

    def to_dict(self) -> dict[str, Any]:
        """The task's entry in report.json (the score's fields first)."""
        data: dict[str, Any] = self.score.to_dict()
        data["generation"] = self.generation
        data["finish_reason"] = self.score.finish_reason
        data["prompt_tokens"] = self.prompt_tokens
        data["from_cache"] = self.from_cache
        data["snapshot"] = self.snapshot
        data["verdict"] = self.verdict
        data["status"] = self.status
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskRecord:
        """A record as JSON carried it (from an xdist worker, or a report.json): read back into
        typed values once, where it arrives."""
        return cls(
            score=TaskScore.from_dict(data),
            generation=data["generation"],
            status=str(data.get("status", "unknown")),
            prompt_tokens=data.get("prompt_tokens"),
            from_cache=data.get("from_cache"),
            snapshot=data.get("snapshot"),
            verdict=data.get("verdict"),
        )


@dataclass(frozen=True)
class Report:
    """``tasks`` (one record per scored task, task-file order), ``aggregate`` (the scores
    summarised: ``aggregate.summarize``), ``meta`` (provenance), ``comparison`` (against a
    baseline, when one was given). ``statuses`` and ``snapshots`` count the tasks' test
    outcomes and snapshot states; ``summary`` is report.json's summary: the aggregate and
    those counts."""

    tasks: tuple[TaskRecord, ...]
    aggregate: dict[str, Any]
    meta: dict[str, Any]
    comparison: Comparison | None = None
    statuses: dict[str, int] = field(init=False)
    snapshots: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "statuses", _count(r.status for r in self.tasks))
        object.__setattr__(self, "snapshots", _count(r.snapshot for r in self.tasks if r.snapshot))

    @classmethod
    def build(
        cls,
        records: Mapping[str, TaskRecord],
        taskset: TaskSet,
        *,
        meta: Mapping[str, Any],
        weights: Mapping[str, float] | None = None,
        baseline: Mapping[str, Any] | None = None,
        max_drop: float = Gate.max_drop,
        selected: Collection[str] | None = None,
    ) -> Report:
        """The report over ``records`` (task_id -> record). Tasks without a record (deselected,
        skipped before generation) are left out. With a ``baseline`` (a loaded report.json),
        the report compares with it; when ``selected`` (the task ids that ran) is a subset of
        the task file, the baseline's overall is recomputed over the same tasks."""
        tasks = tuple(records[t.task_id] for t in taskset if t.task_id in records)
        scores = [record.score for record in tasks]
        aggregate = (
            summarize(scores, weights=weights) if scores else {"n_tasks": 0, "overall": None}
        )
        report = cls(tasks, aggregate, dict(meta))
        if baseline is None:
            return report
        baseline_overall = None
        if selected is not None and len(selected) < len(taskset):
            baseline, baseline_overall = baseline_over(baseline, set(selected), weights=weights)
        comparison = compare_with_baseline(
            {r.task_id: r.score.score for r in tasks},
            baseline,
            current_overall=aggregate["overall"],
            max_drop=max_drop,
            baseline_overall=baseline_overall,
            current_interval=aggregate.get("estimate_interval"),
        )
        return cls(tasks, aggregate, report.meta, comparison)

    @property
    def summary(self) -> dict[str, Any]:
        return {
            **self.aggregate,
            "status": dict(self.statuses),
            "snapshots": dict(self.snapshots),
            "gate": self.gate.to_dict(),
        }

    @property
    def gate(self) -> GateVerdict:
        """The run's verdict from its scores and the baseline (never from snapshots)."""
        return gate_verdict(self.aggregate.get("overall"), self.statuses, self.comparison)

    @property
    def failed_gate(self) -> bool:
        """The overall score fell by more than the baseline comparison allows."""
        return self.comparison is not None and self.comparison.dropped

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "summary": self.summary,
            "tasks": [record.to_dict() for record in self.tasks],
            "meta": self.meta,
        }
        if self.comparison is not None:
            data["comparison"] = self.comparison.to_dict()
        return data

    def inference(self) -> list[dict[str, str]]:
        """The competition's submission format: ``{task_id, generation}`` in task-file order."""
        return submission(self.tasks)

    def files(self) -> dict[str, Callable[[], str]]:
        """The files of the report after inference.json, by name, in the order they are
        written; each text is made when it is written."""
        return {
            "report.json": lambda: dump_json(self.to_dict()),
            "report.html": lambda: render_html(self.to_dict()),
        }

    def lines(self, *, by_task_type: bool = True) -> list[str]:
        """The terminal summary: per format, per task type (unless ``by_task_type`` is False:
        the pytest layer keeps it for ``-v``), the overall score; then the baseline comparison
        and new snapshots, when there are any."""
        out = self._table(by_task_type=by_task_type)
        if self.comparison is not None:
            out.append("")
            out.extend(self.comparison.lines())
        if self.snapshots.get("new"):
            out.append(f"snapshots: {self.snapshots['new']} new, written")
        changed = [r.task_id for r in self.tasks if r.snapshot == "changed"]
        if changed:
            shown = ", ".join(changed[:10]) + (f" (+{len(changed) - 10} more)" if len(changed) > 10 else "")
            out.append(
                f"snapshots: {len(changed)} changed (not counted as failures; "
                f"--snapshot-update accepts them): {shown}"
            )
        return out

    def _table(self, *, by_task_type: bool) -> list[str]:
        s = self.aggregate
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
        if by_task_type:
            out.append(f"{'task type':<16}{'n':>5}{'mean':>8}")
            for name, row in sorted(s["by_task_type"].items()):
                out.append(f"{name:<16}{row['n']:>5}{row['mean']:>8.3f}")
            out.append("")
        headline = HEADLINE_LABELS.get(s["headline"], s["headline"])
        interval = s.get("estimate_interval")
        span = f" (90% range {interval[0]:.4f}-{interval[1]:.4f})" if interval else ""
        out.append(f"overall {s['overall']:.4f}{span}  {headline}")
        out.append(
            f"task mean {s['task_mean']:.4f}  parse rate {s['parse_rate']:.2f} "
            f"(as returned {s['strict_parse_rate']:.2f})  perfect {s['n_perfect']}/{s['n_tasks']}"
            + (f"  truncated {s['n_truncated']}" if s.get("n_truncated") else "")
        )
        return out


def submission(records: Collection[TaskRecord]) -> list[dict[str, str]]:
    """inference.json's content: ``{task_id, generation}`` per record, in the records' order."""
    return [{"task_id": r.task_id, "generation": r.generation} for r in records]


def _count(values: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts
