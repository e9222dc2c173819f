"""Comparing several runs: real report.json files made by scoring real generations.

The runs come from the bundled reference answers and perturbations of them (what models do:
fences and prose around the answer, a truncated document), and, where ../shared is present, from
the competition's real submissions replayed against its task file. Reports are built with the
plugin's own pieces (``score_task``, ``Report.build``) and written to disk, so the comparison
reads exactly what a run writes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support import OPEN150_ANSWERS, SHARED_DATA

from pytest_structeval.compare import main
from pytest_structeval.files import dump_json, write_atomic
from pytest_structeval.report.report import Report, TaskRecord
from pytest_structeval.report.runs import (
    CompareError,
    compare_runs,
    load_run,
    load_runs,
    render_comparison_html,
)
from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import BUNDLED_TASKS, TaskSet, load_generations

HOSTILE = '</pre><script>alert(1)</script><img src="https://evil.example/x.png" onerror="alert(2)">'


def write_report(
    directory: Path, taskset: TaskSet, generations: Mapping[str, str], meta: Mapping[str, object]
) -> Path:
    """Score ``generations`` as the plugin does and write ``directory/report.json``."""
    records = {}
    for task in taskset:
        if task.task_id in generations:
            result = score_task(task, generations[task.task_id])
            records[task.task_id] = TaskRecord(
                result, generations[task.task_id], "passed" if result.perfect else "failed"
            )
    report = Report.build(records, taskset, meta=dict(meta))
    path = directory / "report.json"
    write_atomic(path, dump_json(report.to_dict()))
    return path


def fenced(task_fmt: str, answer: str) -> str:
    return f"Sure! Here is the {task_fmt.upper()}:\n```{task_fmt}\n{answer}\n```\nHope this helps."


def truncated(answer: str) -> str:
    return answer[: len(answer) // 2]


@pytest.fixture(scope="module")
def bundled() -> tuple[TaskSet, dict[str, str]]:
    taskset = TaskSet.load(BUNDLED_TASKS)
    return taskset, load_generations(OPEN150_ANSWERS, taskset)


@pytest.fixture(scope="module")
def bundled_runs(bundled, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four runs over the bundled tasks: the reference answers; the same answers fenced and
    wrapped in prose; every third answer cut in half; and a run that scored only 40 tasks,
    with a hostile generation and model name."""
    taskset, answers = bundled
    root = tmp_path_factory.mktemp("runs")
    ids = [t.task_id for t in taskset]
    cut = {ids[i] for i in range(0, len(ids), 3)}
    runs = [
        ("reference", answers, {"model": "reference-answers", "backend": "replay"}),
        (
            "fenced",
            {t.task_id: fenced(t.fmt, answers[t.task_id]) for t in taskset},
            {"model": "org/chatty", "adapter": "/ckpt/sft-3", "backend": "vllm"},
        ),
        (
            "cut",
            {k: truncated(v) if k in cut else v for k, v in answers.items()},
            {"model": "org/chatty", "adapter": "/ckpt/dpo-1", "backend": "vllm"},
        ),
        (
            "subset",
            {**{k: answers[k] for k in ids[:40]}, ids[1]: HOSTILE},
            {"model": f"evil{HOSTILE}", "backend": "vllm"},
        ),
    ]
    return [write_report(root / name, taskset, gens, meta).parent for name, gens, meta in runs]


def test_labels_come_from_model_and_adapter(bundled_runs):
    runs = load_runs(bundled_runs)
    assert [r.label for r in runs] == [
        "reference-answers",
        "org/chatty + sft-3",
        "org/chatty + dpo-1",
        f"evil{HOSTILE}",
    ]
    # A directory and its report.json are the same run; clashing labels get the directory.
    same = load_runs([bundled_runs[0], bundled_runs[0] / "report.json"])
    assert [r.label for r in same] == [
        "reference-answers (reference) #1",
        "reference-answers (reference) #2",
    ]
    given = load_runs(bundled_runs[:2], labels=["base", "sft"])
    assert [r.label for r in given] == ["base", "sft"]


def test_rows_match_each_report_and_the_paired_test(bundled_runs):
    runs = load_runs(bundled_runs)
    comparison = compare_runs(runs)
    reports = [json.loads((d / "report.json").read_text("utf-8")) for d in bundled_runs]
    assert [row.overall for row in comparison.rows] == [r["summary"]["overall"] for r in reports]
    assert [row.n_tasks for row in comparison.rows] == [150, 150, 150, 40]
    # Only 40 tasks are scored by every run: shared means and the tests cover those.
    assert len(comparison.shared) == 40
    for run, row in zip(runs, comparison.rows, strict=True):
        shared_scores = [run.tasks[t]["score"] for t in comparison.shared]
        assert row.shared_mean == pytest.approx(sum(shared_scores) / 40)
    reference, fenced_row, cut_row, subset_row = comparison.rows
    assert reference.versus_reference is None
    # Fences and prose are stripped before scoring: same scores, not valid as returned.
    assert fenced_row.versus_reference.n_better == fenced_row.versus_reference.n_worse == 0
    assert fenced_row.versus_reference.noise
    assert fenced_row.strict_parse_rate < reference.strict_parse_rate
    # Halved documents score lower on the shared tasks: more than noise.
    cut_test = cut_row.versus_reference
    assert cut_test.mean_delta < 0 and cut_test.n_worse > 0 and not cut_test.noise
    assert subset_row.versus_reference.n_worse == 1  # the hostile answer


def test_disagreements_are_the_tasks_whose_scores_differ(bundled_runs):
    runs = load_runs(bundled_runs)
    comparison = compare_runs(runs)
    by_id = {t.task_id: t for t in comparison.disagreements}
    for task_id in runs[0].tasks:
        scores = [r.score(task_id) for r in runs]
        present = [s for s in scores if s is not None]
        assert (task_id in by_id) == (max(present) != min(present))
        if task_id in by_id:
            assert list(by_id[task_id].scores) == scores
    spreads = [t.spread for t in comparison.disagreements]
    assert spreads == sorted(spreads, reverse=True) and spreads[0] > 0
    # Every disagreement here is a cut answer or the hostile one.
    ids = list(runs[0].tasks)
    assert set(by_id) <= {ids[i] for i in range(0, 150, 3)} | {ids[1]}


def test_reference_can_be_any_run(bundled_runs):
    comparison = compare_runs(load_runs(bundled_runs), reference=2)
    assert comparison.rows[2].versus_reference is None
    assert comparison.rows[0].versus_reference.mean_delta > 0  # the reference answers are better


def test_terminal_table_lists_every_run_and_disagreement(bundled_runs):
    comparison = compare_runs(load_runs(bundled_runs))
    lines = comparison.lines()
    text = "\n".join(lines)
    assert lines[0].split()[:4] == ["run", "tasks", "overall", "shared"]
    for row in comparison.rows[:3]:
        assert any(line.startswith(row.label) for line in lines[1:5])
    assert "evil</pre><script>" in lines[4]  # a terminal shows text as it is (cut to width)
    assert f"tasks where the runs disagree: {len(comparison.disagreements)}" in text
    assert "not noise" in lines[3] and "noise" in lines[2]
    json.dumps(comparison.to_dict())  # plain data


def test_page_escapes_everything_and_runs_no_script(bundled_runs):
    page = render_comparison_html(compare_runs(load_runs(bundled_runs)))

    class Tags(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[tuple[str, dict]] = []

        def handle_starttag(self, tag, attrs):
            self.tags.append((tag, dict(attrs)))

    tags = Tags()
    tags.feed(page)
    names = [t for t, _ in tags.tags]
    assert "script" not in names and "img" not in names
    assert not any(k.startswith("on") for _, attrs in tags.tags for k in attrs)
    policy = next(
        a["content"] for t, a in tags.tags if a.get("http-equiv") == "Content-Security-Policy"
    )
    assert "default-src 'none'" in policy and "script-src 'none'" in policy
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    runs = [a for t, a in tags.tags if t == "tr" and "run" in (a.get("class") or "").split()]
    assert [a["id"] for a in runs] == ["run-1", "run-2", "run-3", "run-4"]
    assert not any(
        a.startswith(("http:", "https:")) for _, attrs in tags.tags for a in attrs.values() if a
    )


def test_bad_reports_name_the_file(tmp_path, bundled_runs):
    missing = tmp_path / "nope" / "report.json"
    with pytest.raises(CompareError, match=r"nope/report.json: report not found"):
        load_run(missing)
    broken = tmp_path / "broken.json"
    broken.write_text('{"summary": {}, "tasks": [', "utf-8")
    with pytest.raises(CompareError, match=r"broken.json: report is not valid JSON: .* line 1"):
        load_run(broken)
    twice = tmp_path / "twice.json"
    twice.write_text(
        json.dumps({"summary": {}, "tasks": [{"task_id": "a", "score": 1}, {"task_id": "a"}]}),
        "utf-8",
    )
    with pytest.raises(CompareError, match=r"tasks\[1\]: task_id a appears twice"):
        load_run(twice)
    wild = tmp_path / "wild.json"
    wild.write_text(json.dumps({"summary": {}, "tasks": [{"task_id": "a", "score": 7}]}), "utf-8")
    with pytest.raises(CompareError, match=r"score 7 is not in \[0, 1\]"):
        load_run(wild)
    with pytest.raises(CompareError, match="at least two"):
        compare_runs(load_runs(bundled_runs[:1]))
    with pytest.raises(CompareError, match="1 label"):
        load_runs(bundled_runs[:2], labels=["only one"])


def test_command_line(bundled_runs, tmp_path, capsys):
    page, data = tmp_path / "compare.html", tmp_path / "compare.json"
    args = [str(p) for p in bundled_runs[:3]]
    assert main([*args, "--out", str(page), "--json", str(data), "--reference", "3"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("run ") and f"page: {page}" in out
    assert "org/chatty + dpo-1" in out
    assert page.read_text("utf-8").startswith("<!doctype html>")
    assert json.loads(data.read_text("utf-8"))["reference"] == "org/chatty + dpo-1"

    assert main([args[0], str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'absent'}: report not found\n"


@pytest.fixture(scope="module")
def shared_runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The competition's real submissions replayed against its task file."""
    if not (SHARED_DATA / "public_150.json").exists():
        pytest.skip("../shared/data is not present in this checkout")
    taskset = TaskSet.load(SHARED_DATA / "public_150.json")
    root = tmp_path_factory.mktemp("shared-runs")
    paths = []
    for source in sorted((SHARED_DATA / "inference").glob("scored_*.json")):
        generations = load_generations(source, taskset)
        meta = {"backend": "replay", "model": None, "generations": str(source)}
        paths.append(write_report(root / source.stem, taskset, generations, meta).parent)
    return paths


def test_real_submissions(shared_runs):
    runs = load_runs(shared_runs)
    comparison = compare_runs(runs)
    assert [r.label for r in runs] == [p.name + ".json" for p in shared_runs]
    assert len(comparison.shared) == 150
    # Different fine-tunes of one model: they disagree on many tasks, not on all.
    assert 10 < len(comparison.disagreements) < 150
    lines = comparison.lines()
    assert all(any(line.startswith(r.label) for line in lines) for r in runs)


def test_runs_without_shared_tasks(bundled, tmp_path):
    taskset, answers = bundled
    ids = [t.task_id for t in taskset]
    first = write_report(tmp_path / "a", taskset, {k: answers[k] for k in ids[:10]}, {})
    second = write_report(tmp_path / "b", taskset, {k: answers[k] for k in ids[10:20]}, {})
    comparison = compare_runs(load_runs([first, second]))
    assert comparison.shared == () and comparison.disagreements == ()
    assert [row.versus_reference for row in comparison.rows] == [None, None]
    assert [row.shared_mean for row in comparison.rows] == [None, None]
    assert [r.label for r in comparison.runs] == ["a", "b"]  # no model: the directory name
    lines = comparison.lines()
    assert lines[1].split()[:4] == ["a", "10", "1.0000", "–"] and "ref" in lines[1]
    assert lines[2].split()[:5] == ["b", "10", "1.0000", "–", "–"]
    assert "no task scored differently" in lines[-1]
