"""Several runs side by side: a row per run, and the tasks where the runs disagree.

People try many checkpoints (SFT, DPO, merges, adapters) on the same tasks. Given their
report.json files, ``compare_runs`` computes one value that feeds both views, the terminal
table (``RunsComparison.lines``) and a self-contained HTML page (``render_comparison_html``):

* a row per run: its label, how many tasks it scored, its overall score and per-format means and
  parse rates (as its report states them), its mean over the tasks that *every* run scored (the
  fair comparison when the runs scored different subsets), and its difference from the
  reference run (the first, unless chosen) over those shared tasks, with the same paired test
  the ``--baseline`` gate uses (bootstrap interval, sign test): more than noise or not;
* the tasks where the runs disagree (scores that differ among the runs that scored the task),
  largest spread first, with every run's score; the page adds each run's generation side by
  side and a diff against the reference's, on demand.

Pure: reads report.json files, imports no pytest, vLLM or torch. Model output is data: the page
escapes every string taken from a report and runs no script at all.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..tasks import FORMATS
from .estimate import leaderboard_difference
from .gate import EPS, PairedTest, is_number, paired_test, read_report, task_records
from .html import CSS, code_block, esc, fmt_delta, fmt_num, fmt_pct, page_head

LABEL_WIDTH = 28  # terminal column for run labels; longer ones are cut with an ellipsis
MAX_TERMINAL_TASKS = 30  # disagreeing tasks listed in the terminal; the page lists all


class CompareError(ValueError):
    """A report.json that cannot be compared; the message names the file and the problem."""


@dataclass(frozen=True)
class Run:
    """One run's report: where it came from, how it is called, and its task records by id."""

    label: str
    source: str
    summary: Mapping[str, Any]
    tasks: Mapping[str, Mapping[str, Any]]  # task_id -> record, in the report's order

    def score(self, task_id: str) -> float | None:
        record = self.tasks.get(task_id)
        return None if record is None else record.get("score")


def load_run(path: str | os.PathLike[str], *, label: str | None = None) -> Run:
    """Read one report.json (a directory means its ``report.json``) and check what the
    comparison needs: a task list with unique string ids and scores in [0, 1] or null."""
    hint = "pass the report.json that a run wrote to its --out directory"
    path, report = read_report(path, what="report", hint=hint, error=CompareError)
    summary = report.get("summary")
    tasks = report.get("tasks")
    if not isinstance(summary, dict) or not isinstance(tasks, list):
        raise CompareError(f"report {path}: no 'summary' object and 'tasks' list; {hint}")
    records = task_records(tasks, source=f"report {path}", error=CompareError)
    meta = report.get("meta") if isinstance(report.get("meta"), dict) else {}
    return Run(label or default_label(meta, path), str(path), summary, records)


def default_label(meta: Mapping[str, Any], path: Path) -> str:
    """``model + adapter`` from the report's meta (the adapter by its directory name), else the
    replayed generations file's name, else the report's directory name."""
    model = meta.get("model")
    adapter = meta.get("adapter")
    if model:
        return f"{model} + {Path(str(adapter)).name}" if adapter else str(model)
    if meta.get("generations"):
        return Path(str(meta["generations"])).name
    return path.parent.name or path.name


def load_runs(
    paths: Sequence[str | os.PathLike[str]], *, labels: Sequence[str] | None = None
) -> list[Run]:
    """Load every report; labels (given, or from each report) are made unique by adding the
    report's directory name, then a number."""
    if labels is not None and len(labels) != len(paths):
        raise CompareError(f"{len(labels)} label(s) for {len(paths)} report(s)")
    runs = [
        load_run(path, label=labels[i] if labels is not None else None)
        for i, path in enumerate(paths)
    ]
    return _unique_labels(runs)


def _unique_labels(runs: list[Run]) -> list[Run]:
    def duplicated(items: list[Run]) -> set[str]:
        seen = [r.label for r in items]
        return {label for label in seen if seen.count(label) > 1}

    clash = duplicated(runs)
    runs = [
        replace(r, label=f"{r.label} ({Path(r.source).parent.name})") if r.label in clash else r
        for r in runs
    ]
    counts: dict[str, int] = {}
    clash = duplicated(runs)
    out = []
    for run in runs:
        if run.label in clash:
            counts[run.label] = counts.get(run.label, 0) + 1
            run = replace(run, label=f"{run.label} #{counts[run.label]}")
        out.append(run)
    return out


@dataclass(frozen=True)
class RunRow:
    """A run's line in the table. ``shared_mean`` and ``versus_reference`` cover the tasks every
    run scored; ``versus_reference`` is None for the reference itself, and for every run when
    no task was scored by all of them."""

    label: str
    n_tasks: int
    overall: float | None
    by_format: Mapping[str, Mapping[str, Any]]
    parse_rate: float | None
    strict_parse_rate: float | None
    shared_mean: float | None
    versus_reference: PairedTest | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "n_tasks": self.n_tasks,
            "overall": self.overall,
            "by_format": {k: dict(v) for k, v in self.by_format.items()},
            "parse_rate": self.parse_rate,
            "strict_parse_rate": self.strict_parse_rate,
            "shared_mean": self.shared_mean,
            "versus_reference": (
                self.versus_reference.to_dict() if self.versus_reference is not None else None
            ),
        }


@dataclass(frozen=True)
class TaskRow:
    """A task whose score differs between runs: scores in run order (None: not scored)."""

    task_id: str
    task_name: str
    output_type: str
    scores: tuple[float | None, ...]

    @property
    def spread(self) -> float:
        present = [s for s in self.scores if s is not None]
        return max(present) - min(present)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task_name": self.task_name,
            "output_type": self.output_type,
            "scores": list(self.scores),
            "spread": self.spread,
        }


@dataclass(frozen=True)
class RunsComparison:
    runs: tuple[Run, ...]
    reference: int
    rows: tuple[RunRow, ...]
    shared: tuple[str, ...]  # task ids every run scored, in the first run's order
    disagreements: tuple[TaskRow, ...]  # largest spread first

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": [{"label": r.label, "source": r.source} for r in self.runs],
            "reference": self.runs[self.reference].label,
            "rows": [row.to_dict() for row in self.rows],
            "n_shared": len(self.shared),
            "disagreements": [t.to_dict() for t in self.disagreements],
        }

    @property
    def formats(self) -> list[str]:
        """The formats that some run scored tasks of: the columns of both views."""
        return [f for f in FORMATS if any(row.by_format.get(f, {}).get("n") for row in self.rows)]

    def lines(self) -> list[str]:
        """The terminal view: a row per run, then the disagreeing tasks (the first few)."""
        fmts = self.formats
        head = (
            f"{'run':<{LABEL_WIDTH}} {'tasks':>5} {'overall':>8} {'shared':>8} {'Δ ref':>8}  "
            f"{'95% CI':<17} {'':<9}"
            + "".join(f"{f:>6}" for f in fmts)
            + f"{'parse':>7}{'strict':>7}"
        )
        out = [head]
        for index, row in enumerate(self.rows):
            test = row.versus_reference
            if test is None:
                versus = f"{'ref' if index == self.reference else '–':>8}  {'':<17} {'':<9}"
            else:
                verdict = "noise" if test.noise else "not noise"
                versus = (
                    f"{test.mean_delta:>+8.4f}  [{test.ci_low:+.3f}, {test.ci_high:+.3f}] "
                    f"{verdict:<9}"
                )
            out.append(
                f"{_cut(row.label):<{LABEL_WIDTH}} {row.n_tasks:>5} {_fixed(row.overall, 4):>8} "
                f"{_fixed(row.shared_mean, 4):>8} {versus}"
                + "".join(f"{_fixed(row.by_format.get(f, {}).get('mean'), 2):>6}" for f in fmts)
                + f"{_fixed(row.parse_rate, 2):>7}{_fixed(row.strict_parse_rate, 2):>7}"
            )
        out.append(
            f"shared tasks: {len(self.shared)}; Δ ref and its paired 95% bootstrap interval are "
            f"over them, against {self.runs[self.reference].label}"
        )
        ref = self.runs[self.reference].summary
        for index, run in enumerate(self.runs):
            # competition estimates only: does the leaderboard show the difference? (estimate.py)
            if index != self.reference and ref.get("estimate_interval"):
                difference = leaderboard_difference(
                    ref.get("estimate_interval"),
                    run.summary.get("estimate_interval"),
                    ref.get("overall"),
                    run.summary.get("overall"),
                )
                out.append(f"{_cut(run.label)}: {difference}")
        out.append("")
        if not self.disagreements:
            out.append("no task scored differently between the runs")
            return out
        out.append(f"tasks where the runs disagree: {len(self.disagreements)}")
        out.append(
            f"{'task':<30}" + "".join(f"{'run ' + str(i + 1):>8}" for i in range(len(self.runs)))
        )
        for task in self.disagreements[:MAX_TERMINAL_TASKS]:
            out.append(f"{task.task_id:<30}" + "".join(f"{_fixed(s, 2):>8}" for s in task.scores))
        if len(self.disagreements) > MAX_TERMINAL_TASKS:
            out.append(
                f"... and {len(self.disagreements) - MAX_TERMINAL_TASKS} more (see the page)"
            )
        out.append("runs: " + "; ".join(f"{i + 1} = {r.label}" for i, r in enumerate(self.runs)))
        return out


def _cut(label: str) -> str:
    return label if len(label) <= LABEL_WIDTH else label[: LABEL_WIDTH - 1] + "…"


def _fixed(value: object, digits: int) -> str:
    return f"{value:.{digits}f}" if is_number(value) else "–"


def _mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def compare_runs(runs: Sequence[Run], *, reference: int = 0) -> RunsComparison:
    """Compare ``runs`` (at least two) against ``runs[reference]``."""
    if len(runs) < 2:
        raise CompareError(f"need at least two reports to compare, got {len(runs)}")
    if not 0 <= reference < len(runs):
        raise CompareError(f"reference {reference + 1} is not one of the {len(runs)} runs")
    scored = [{t for t in run.tasks if run.score(t) is not None} for run in runs]
    shared = tuple(t for t in runs[0].tasks if all(t in s for s in scored))
    ref = runs[reference]
    rows = []
    for index, run in enumerate(runs):
        summary = run.summary
        rows.append(
            RunRow(
                label=run.label,
                n_tasks=len(scored[index]),
                overall=summary.get("overall"),
                by_format=summary.get("by_format") or {},
                parse_rate=summary.get("parse_rate"),
                strict_parse_rate=summary.get("strict_parse_rate"),
                shared_mean=_mean([float(run.score(t)) for t in shared]),  # type: ignore[arg-type]
                versus_reference=(
                    None
                    if index == reference or not shared
                    else paired_test([float(run.score(t)) - float(ref.score(t)) for t in shared])  # type: ignore[arg-type]
                ),
            )
        )
    order: dict[str, None] = {}
    for run in runs:
        order.update(dict.fromkeys(run.tasks))
    disagreements = []
    for task_id in order:
        scores = tuple(run.score(task_id) for run in runs)
        present = [s for s in scores if s is not None]
        if len(present) >= 2 and max(present) - min(present) > EPS:
            record = next(run.tasks[task_id] for run in runs if task_id in run.tasks)
            disagreements.append(
                TaskRow(
                    task_id,
                    str(record.get("task_name", "")),
                    str(record.get("output_type", "")),
                    scores,
                )
            )
    position = {task_id: i for i, task_id in enumerate(order)}
    disagreements.sort(key=lambda t: (-t.spread, position[t.task_id]))
    return RunsComparison(tuple(runs), reference, tuple(rows), shared, tuple(disagreements))


# --------------------------------------------------------------------------------------------
# The page

_COMPARE_CSS = """
/* a run's name wraps between words (at spaces), never inside one */
.runs td.label{font-weight:600;max-width:360px;overflow-wrap:normal;word-break:keep-all}
tr.reference td{background:#f1f8ff}
.side{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:12px}
.side>div{min-width:0}.side h4{margin:6px 0;font-size:13px}
.diff .add{background:#dafbe1}.diff .del{background:#ffebe9}.diff .hunk{color:var(--muted)}
td.best{font-weight:700}.noise{color:var(--muted)}.signal{color:var(--bad);font-weight:700}
.signal.up{color:var(--ok)}
"""


def _run_rows(comparison: RunsComparison) -> str:
    fmts = comparison.formats
    head = (
        "<tr><th>#</th><th>run</th><th class='num'>tasks</th><th class='num'>overall</th>"
        "<th class='num'>shared mean</th><th class='num'>Δ reference</th><th>paired test</th>"
        + "".join(f"<th class='num'>{esc(f.upper())}</th>" for f in fmts)
        + "<th class='num'>parse</th><th class='num'>as returned</th><th>source</th></tr>"
    )
    body = []
    for index, (run, row) in enumerate(zip(comparison.runs, comparison.rows, strict=True)):
        test = row.versus_reference
        if test is None:
            versus = f"<td class='num'>{'reference' if index == comparison.reference else '–'}</td>"
            verdict = "<td></td>"
        else:
            kind = "noise" if test.noise else ("signal up" if test.mean_delta > 0 else "signal")
            words = "within noise" if test.noise else "more than noise"
            versus = f"<td class='num'>{fmt_delta(test.mean_delta, 4)}</td>"
            verdict = (
                f"<td><span class='{kind}'>{words}</span> · {fmt_pct(test.confidence)} CI "
                f"[{fmt_delta(test.ci_low)}, {fmt_delta(test.ci_high)}] · sign p {esc(f'{test.sign_test_p:.3g}')}"
                f" · {esc(test.n_better)} better, {esc(test.n_worse)} worse</td>"
            )
        cells = "".join(
            f"<td class='num' title='parses {fmt_pct(row.by_format.get(f, {}).get('parse_rate'))}'>"
            f"{fmt_num(row.by_format.get(f, {}).get('mean'))}</td>"
            for f in fmts
        )
        body.append(
            f"<tr class='run{' reference' if index == comparison.reference else ''}' "
            f"id='run-{index + 1}' data-label='{esc(run.label)}'>"
            f"<td>{index + 1}</td><td class='label'>{esc(run.label)}</td>"
            f"<td class='num'>{esc(row.n_tasks)}</td><td class='num'>{fmt_num(row.overall, 4)}</td>"
            f"<td class='num'>{fmt_num(row.shared_mean, 4)}</td>{versus}{verdict}{cells}"
            f"<td class='num'>{fmt_pct(row.parse_rate)}</td><td class='num'>{fmt_pct(row.strict_parse_rate)}</td>"
            f"<td><code>{esc(run.source)}</code></td></tr>"
        )
    return (
        "<section id='runs'><h2>Runs</h2>"
        f"<p class='meta'>Shared mean and Δ reference cover the {len(comparison.shared)} tasks "
        "that every run scored; the paired test is the one <code>--baseline</code> uses "
        "(percentile bootstrap of the mean difference, exact sign test). Format columns: mean "
        "score (hover: parse rate).</p>"
        f"<table class='runs'><thead>{head}</thead><tbody>{''.join(body)}</tbody></table></section>"
    )


def _diff(reference: str, other: str) -> str:
    lines = []
    for line in difflib.unified_diff(
        reference.splitlines(), other.splitlines(), "reference", "this run", lineterm="", n=2
    ):
        cls = (
            "hunk"
            if line.startswith("@@")
            else "add"
            if line.startswith("+") and not line.startswith("+++")
            else "del"
            if line.startswith("-") and not line.startswith("---")
            else ""
        )
        lines.append(f"<span class='{cls}'>{esc(line)}</span>" if cls else esc(line))
    return "\n".join(lines)


def _task_detail(comparison: RunsComparison, task: TaskRow) -> str:
    ref_run = comparison.runs[comparison.reference]
    ref_text = str((ref_run.tasks.get(task.task_id) or {}).get("generation") or "")
    columns = []
    for index, run in enumerate(comparison.runs):
        record = run.tasks.get(task.task_id)
        title = f"{index + 1}. {esc(run.label)}"
        if record is None:
            columns.append(f"<div><h4>{title}</h4><p class='meta'>not in this run</p></div>")
            continue
        error = record.get("syntax_error") or None
        facts = [
            f"score <b>{fmt_num(record.get('score'))}</b>",
            f"parses: <b>{esc(record.get('syntax_ok'))}</b>",
            f"as returned: <b>{esc(record.get('strict_ok'))}</b>",
        ]
        if record.get("stripped"):
            facts.append("stripped " + ", ".join(esc(s) for s in record["stripped"]))
        if error:
            facts.append(
                f"error at line {esc(error.get('line'))}, column {esc(error.get('column'))}: "
                f"{esc(error.get('message'))}"
            )
        generation = str(record.get("generation") or "")
        diff = ""
        if index != comparison.reference and task.task_id in ref_run.tasks:
            diff = (
                "<details class='diff'><summary>diff against the reference</summary>"
                f"<pre>{_diff(ref_text, generation) or 'identical'}</pre></details>"
            )
        columns.append(
            f"<div><h4>{title}</h4><p class='meta'>{' · '.join(facts)}</p>"
            f"{code_block(generation, None)}{diff}</div>"
        )
    return f"<div class='side'>{''.join(columns)}</div>"


def _disagreements(comparison: RunsComparison) -> str:
    if not comparison.disagreements:
        return (
            "<section id='disagreements'><h2>Tasks where the runs disagree</h2>"
            "<p>Every task that two or more runs scored has the same score in all of them.</p></section>"
        )
    head = (
        "<tr><th>task</th><th>name</th><th>format</th><th class='num'>spread</th>"
        + "".join(
            f"<th class='num' title='{esc(run.label)}'>{i + 1}</th>"
            for i, run in enumerate(comparison.runs)
        )
        + "</tr>"
    )
    rows = []
    width = 4 + len(comparison.runs)
    for task in comparison.disagreements:
        present = [s for s in task.scores if s is not None]
        best = max(present)
        cells = "".join(
            f"<td class='num{' best' if s is not None and s >= best - EPS else ''}'>{fmt_num(s)}</td>"
            for s in task.scores
        )
        rows.append(
            f"<tr class='task' id='task-{esc(task.task_id)}'><td><code>{esc(task.task_id)}</code></td>"
            f"<td>{esc(task.task_name)}</td><td>{esc(task.output_type)}</td>"
            f"<td class='num'>{fmt_num(task.spread)}</td>{cells}</tr>"
            f"<tr class='detail'><td colspan='{width}'><details><summary>generations of "
            f"{esc(task.task_id)} side by side</summary>{_task_detail(comparison, task)}</details></td></tr>"
        )
    return (
        "<section id='disagreements'><h2>Tasks where the runs disagree "
        f"({len(comparison.disagreements)})</h2>"
        "<p class='meta'>Largest spread first; columns are the runs by number; bold: the best "
        "score on the task.</p>"
        f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table></section>"
    )


def render_comparison_html(comparison: RunsComparison) -> str:
    """One self-contained page: no script, no fetch, every report string escaped."""
    title = f"StructEval-T · {len(comparison.runs)} runs compared"
    parts = [
        *page_head(title, script=None, css=CSS + _COMPARE_CSS),
        f"<header><h1>{esc(title)}</h1><p class='meta'>reference: "
        f"<b>{esc(comparison.runs[comparison.reference].label)}</b></p></header>",
        _run_rows(comparison),
        _disagreements(comparison),
        "</body></html>",
    ]
    return "\n".join(parts)
