"""Leave-one-out check of the competition estimate on the scored files in ../shared/data.

For each scored_<official>.json: the official score, the estimate with every rule off that was
chosen by looking at the scored files ("old"), with all of them on ("new"), the leave-one-out
estimate, and the 90% interval. Leave-one-out: each rule chosen by looking at the scored files
(``RULES``) is adopted for a held-out file only if it does not raise the mean absolute error on
the other seven; the interval has no constant fitted to the files, so it needs no refit.

Usage: python bench/bench_estimate.py
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import statistics
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from pytest_structeval.report.aggregate import summarize
from pytest_structeval.scoring import expected, score
from pytest_structeval.scoring.formats import parse
from pytest_structeval.tasks import Task, TaskSet, load_generations

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def _rows_unkeyed(count: int, first_column: str) -> tuple[str, ...]:
    return tuple(f"{expected.CSV_ROWS}[{i}]" for i in range(count))


# Each rule chosen by looking at the scored files, as the switch that turns it off.
RULES = {
    "CSV rows keyed by the first column": (expected, "_row_paths", _rows_unkeyed),
}


@contextlib.contextmanager
def rules_off(names: tuple[str, ...]) -> Iterator[None]:
    saved = []
    for name in names:
        module, attr, off = RULES[name]
        saved.append((module, attr, getattr(module, attr)))
        setattr(module, attr, off)
    try:
        yield
    finally:
        for module, attr, value in saved:
            setattr(module, attr, value)


def scored_files(data: Path = DATA) -> list[Path]:
    return sorted(
        (data / "inference").glob("scored_*.json"), key=lambda p: float(p.stem.split("_", 1)[1])
    )


def official(path: Path) -> float:
    return float(path.stem.split("_", 1)[1])


def estimates(data: Path = DATA) -> dict[tuple[str, ...], dict[str, dict[str, object]]]:
    """Per set of rules switched off: per file, its summary."""
    tasks = TaskSet.load(data / "public_150.json")
    files = scored_files(data)
    generations = {p.name: load_generations(p, tasks) for p in files}
    out = {}
    for k in range(len(RULES) + 1):
        for off in itertools.combinations(RULES, k):
            with rules_off(off):
                out[off] = {
                    p.name: summarize(
                        [score.score_task(t, generations[p.name][t.task_id]) for t in tasks]
                    )
                    for p in files
                }
    return out


def leave_one_out(data: Path = DATA) -> list[dict[str, object]]:
    files = scored_files(data)
    table = estimates(data)
    rows = []
    for held in files:
        others = [p for p in files if p != held]
        off: list[str] = []
        for name in RULES:
            on_err = statistics.fmean(
                abs(table[tuple(off)][p.name]["overall"] - official(p)) for p in others
            )
            off_err = statistics.fmean(
                abs(
                    table[tuple(sorted({*off, name}, key=list(RULES).index))][p.name]["overall"]
                    - official(p)
                )
                for p in others
            )
            if on_err > off_err:
                off.append(name)
        new = table[()][held.name]
        rows.append(
            {
                "file": held.name,
                "official": official(held),
                "old": table[tuple(RULES)][held.name]["overall"],
                "new": new["overall"],
                "loo": table[tuple(off)][held.name]["overall"],
                "loo_rules_off": off,
                "interval": table[tuple(off)][held.name]["estimate_interval"],
            }
        )
    return rows


def kind_table(data: Path = DATA) -> list[tuple[str, int, list[float]]]:
    """Per task kind: its task count and the mean estimated score in each scored file (files in
    official-score order). The grader's per-kind truth is hidden; only the files' totals are
    known, so this shows where the files differ, not which kind the estimate gets wrong."""
    files = scored_files(data)
    summaries = estimates(data)[()]
    kinds = sorted({k for s in summaries.values() for k in s["by_task_type"]})  # type: ignore[attr-defined]
    out = []
    for kind in kinds:
        per_file = [summaries[p.name]["by_task_type"][kind] for p in files]  # type: ignore[index]
        out.append((kind, int(per_file[0]["n"]), [float(k["mean"]) for k in per_file]))
    return out


# -- a reading measured and not adopted (docs/scoring.md): a multi-row CSV's rows as a list --


def _source_rows(task: Task) -> int:
    """Data rows of a CSV→JSON/YAML task's source CSV (0 for any other task)."""
    code = expected.query_code(task.query)
    if task.input_type.lower() != "csv" or task.fmt not in ("json", "yaml") or code is None:
        return 0
    return sum(1 for row in list(csv.reader(io.StringIO(code.strip())))[1:] if any(row))


def _lists(value: object) -> Iterator[list[object]]:
    """Where an answer may hold the rows: the document itself, or a list one or two keys down."""
    if isinstance(value, list):
        yield value
    if isinstance(value, dict):
        for child in value.values():
            if isinstance(child, list):
                yield child
            if isinstance(child, dict):
                yield from (v for v in child.values() if isinstance(v, list))


def _has(node: object, keys: list[str]) -> bool:
    for key in keys:
        if not (isinstance(node, dict) and key in node):
            return False
        node = node[key]
    return True


def rows_as_list_key_score(paths: tuple[str, ...], value: object, rows: int) -> float:
    """Each source row as an element of a list: the fraction of (row, header) pairs found in
    the best list, the headers' shared first name (the record's, ``planet`` of
    ``planet.name``) dropped and indices ignored."""
    tokens = [[t.split("[")[0] for t in path.split(".")] for path in paths]
    if len({t[0] for t in tokens}) == 1 and all(len(t) > 1 for t in tokens):
        tokens = [t[1:] for t in tokens]
    wanted = rows * len(tokens)
    return max(
        (
            sum(_has(items[i], t) for i in range(min(rows, len(items))) for t in tokens) / wanted
            for items in _lists(value)
        ),
        default=0.0,
    )


def rows_as_list(data: Path = DATA) -> dict[str, dict[str, float]]:
    """Per reading ("list", "mean" of it and the estimate's), per file: the overall estimate
    with the multi-row CSV→JSON/YAML tasks scored under that reading."""
    tasks = TaskSet.load(data / "public_150.json")
    out: dict[str, dict[str, float]] = {"list": {}, "mean": {}}
    for path in scored_files(data):
        generations = load_generations(path, tasks)
        scores: dict[str, list[score.TaskScore]] = {"list": [], "mean": []}
        for task in tasks:
            s = score.score_task(task, generations[task.task_id])
            rows = _source_rows(task)
            for reading in scores:
                if rows > 1 and s.syntax_ok:
                    value = parse(s.code, task.fmt).value
                    listed = rows_as_list_key_score(s.expected_paths, value, rows)
                    keys = listed if reading == "list" else (listed + s.key_score) / 2
                    scores[reading].append(replace(s, score=score.task_score(True, keys)))
                else:
                    scores[reading].append(s)
        for reading, scored in scores.items():
            out[reading][path.name] = float(summarize(scored)["overall"])  # type: ignore[arg-type]
    return out


def figures(rows: list[dict[str, object]], key: str) -> dict[str, float]:
    errors = [float(r[key]) - float(r["official"]) for r in rows]  # type: ignore[arg-type]
    return {
        "mae": statistics.fmean(abs(e) for e in errors),
        "worst": max(abs(e) for e in errors),
        "r": statistics.correlation(
            [float(r["official"]) for r in rows], [float(r[key]) for r in rows]
        ),  # type: ignore[arg-type]
        "mean_bias": statistics.fmean(errors),
    }


def main() -> int:
    if not (DATA / "public_150.json").is_file():
        print(f"skipped: reference data not found at {DATA}")
        return 0
    rows = leave_one_out()
    print(f"{'file':24} {'official':>8} {'old':>7} {'new':>7} {'LOO':>7}  interval          in")
    for r in rows:
        lo, hi = r["interval"]  # type: ignore[misc]
        inside = lo <= r["official"] <= hi  # type: ignore[operator]
        print(
            f"{r['file']:24} {r['official']:8.5f} {r['old']:7.4f} {r['new']:7.4f} {r['loo']:7.4f}"
            f"  [{lo:.4f}, {hi:.4f}]  {'yes' if inside else 'NO'}"
            + (f"  (LOO drops: {', '.join(r['loo_rules_off'])})" if r["loo_rules_off"] else "")
        )
    for key in ("old", "new", "loo"):
        f = figures(rows, key)
        print(
            f"{key:4}: MAE {f['mae']:.4f}  worst {f['worst']:.4f}  r {f['r']:.4f}  mean bias {f['mean_bias']:+.4f}"
        )
    held = sum(1 for r in rows if r["interval"][0] <= r["official"] <= r["interval"][1])  # type: ignore[index,operator]
    width = statistics.fmean(r["interval"][1] - r["interval"][0] for r in rows)  # type: ignore[index,operator]
    print(f"interval holds the official score for {held} of {len(rows)}; mean width {width:.4f}")
    print("\nmean estimated score per task kind (columns: files by official score)")
    print(f"{'kind':16}{'n':>3} " + " ".join(f"{r['official']:7.4f}" for r in rows))
    for kind, n, means in kind_table():
        print(f"{kind:16}{n:3} " + " ".join(f"{m:7.3f}" for m in means))
    print("\nnot adopted: the rows of a multi-row CSV source as a list (CSV→JSON/YAML)")
    for reading, per_file in rows_as_list().items():
        errors = [per_file[r["file"]] - r["official"] for r in rows]  # type: ignore[index,operator]
        print(
            f"{reading:5} " + " ".join(f"{e:+.4f}" for e in errors)
            + f"  MAE {statistics.fmean(abs(e) for e in errors):.4f}"
            + f"  worst {max(abs(e) for e in errors):.4f}"
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
