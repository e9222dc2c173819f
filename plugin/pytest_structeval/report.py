"""The run's report: a value computed from task results, and the files written from it.

One ``Report`` feeds report.json, inference.json, report.html, the terminal table and the gate.
Files are written once, at the end of the session, each to a temporary name and renamed into
place, so a crash never leaves a half-written report behind.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .aggregate import summarize
from .score import TaskScore
from .tasks import OUTPUT_TYPES, TaskSet


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
        for fmt in (t.lower() for t in OUTPUT_TYPES):
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
        out.append(f"overall {s['overall']:.4f}  {headline}")
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


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` as UTF-8 to a temporary file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        # mkstemp creates 0600; reports are meant to be shared, so honour the umask instead.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def dump_json(data: object) -> str:
    """JSON text with non-ASCII kept as UTF-8. A lone surrogate (models do emit them) cannot be
    encoded in UTF-8, so it is written as its ``\\uXXXX`` escape: JSON-equivalent, and the
    file stays valid UTF-8. Structural characters are ASCII, so this only touches strings."""
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
