"""Replay of an existing inference.json through the real plugin (no engine)."""

from __future__ import annotations

import json
import os

import pytest
from support import OPEN150, OPEN150_ANSWERS


def task_reports(run, when: str = "call"):
    return [
        r
        for r in run.result.reprec.getreports("pytest_runtest_logreport")
        if r.when == when and "::preflight::" not in r.nodeid
    ]


def test_real_submission_collects_150_tasks_and_writes_both_files(suite, shared_data):
    tasks = shared_data / "public_150.json"
    generations = shared_data / "inference" / "scored_0.77064.json"
    run = suite.run(f"--tasks={tasks}", f"--generations={generations}")

    assert len(task_reports(run)) == 150
    submitted = json.loads(generations.read_text("utf-8"))
    assert {(g["task_id"], g["generation"]) for g in run.inference} == {
        (g["task_id"], g["generation"]) for g in submitted
    }
    assert [g["task_id"] for g in run.inference] == [
        t["task_id"] for t in json.loads(tasks.read_text("utf-8"))
    ]
    report = run.report
    assert report["meta"]["backend"] == "replay"
    assert report["meta"]["engine_builds"] == 0
    assert set(report["summary"]["by_format"]) == {"json", "yaml", "toml", "xml", "csv"}
    assert report["summary"]["headline"] == "competition_estimate"
    assert len(report["tasks"]) == 150
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED  # not every answer scores 1.0
    run.result.stdout.fnmatch_lines(["*structeval summary*", "overall 0.*", "*report.json*"])


def test_reference_answers_pass_every_bundled_task(suite):
    run = suite.run(f"--generations={OPEN150_ANSWERS}")
    assert run.result.ret == pytest.ExitCode.OK
    assert len(task_reports(run)) == 150
    summary = run.report["summary"]
    assert summary["headline"] == "structeval"
    assert summary["overall"] == 1.0
    assert summary["n_perfect"] == 150


def task_record(task_id: str, output_type: str, paths: list[str]) -> dict:
    return {
        "task_id": task_id,
        "task_name": f"Text to {output_type}",
        "query": "q",
        "output_type": output_type,
        "raw_output_metric": paths,
    }


def test_inference_json_keeps_non_ascii_and_task_file_order(suite, pytester):
    tasks = [task_record("b", "JSON", ["ville"]), task_record("a", "YAML", ["k"])]
    generations = [
        {"task_id": "a", "generation": "k: 東京"},
        {"task_id": "b", "generation": '{"ville": "Café"}'},
    ]
    pytester.makefile(".json", tasks=json.dumps(tasks), gens=json.dumps(generations))
    run = suite.run("--tasks=tasks.json", "--generations=gens.json")
    raw = (run.out / "inference.json").read_text("utf-8")
    assert "東京" in raw and "Café" in raw
    # Snapshots show the document as written, not upstream's unicode_escape mojibake.
    [snapshot] = pytester.path.glob("__structeval_snapshots__/*/b.json")
    assert snapshot.read_text("utf-8") == '{"ville": "Café"}\n'
    assert [g["task_id"] for g in run.inference] == ["b", "a"]


def test_failure_text_is_the_scorers_explanation_without_traceback(suite, pytester):
    tasks = [task_record("t1", "JSON", ["a", "b"])]
    pytester.makefile(
        ".json",
        tasks=json.dumps(tasks),
        gens=json.dumps([{"task_id": "t1", "generation": '{"a": 1, '}]),
    )
    run = suite.run("--tasks=tasks.json", "--generations=gens.json")
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    [report] = task_reports(run)
    text = report.longreprtext
    assert "line 1" in text and "column" in text
    assert "Traceback" not in text and "plugin.py" not in text and "def " not in text
    assert len(text.splitlines()) <= 15


@pytest.mark.parametrize("keyword", ["CSV to JSON", "csv to json and not YAML"])
def test_selection_generates_only_selected_tasks(suite, shared_data, keyword):
    tasks = shared_data / "public_150.json"
    generations = shared_data / "inference" / "scored_0.77064.json"
    run = suite.run(f"--tasks={tasks}", f"--generations={generations}", "-k", keyword)
    assert len(task_reports(run)) == 14
    assert len(run.inference) == 14
    assert {r["task_name"] for r in run.report["tasks"]} == {"CSV to JSON"}


@pytest.mark.parametrize(
    ("marker", "count"),
    [
        ("toml", 25),
        ("csv", 20),
        ("conversion", 110),
        ("generation", 40),
        ("json and conversion", 48),
    ],
)
def test_markers_select_by_format_and_kind(suite, marker, count):
    run = suite.run(f"--generations={OPEN150_ANSWERS}", "-m", marker, "--strict-markers")
    assert run.result.ret == pytest.ExitCode.OK
    assert len(task_reports(run)) == count


def test_exitfirst_stops_after_the_first_failing_task(suite, shared_data):
    run = suite.run(
        f"--tasks={shared_data / 'public_150.json'}",
        f"--generations={shared_data / 'inference' / 'scored_0.44976.json'}",
        "-x",
    )
    reports = task_reports(run)
    assert reports[-1].failed and all(r.passed for r in reports[:-1])
    assert len(reports) < 150


def test_last_failed_reruns_only_the_failures(suite, pytester, shared_data):
    args = (
        f"--tasks={shared_data / 'public_150.json'}",
        f"--generations={shared_data / 'inference' / 'scored_0.77064.json'}",
    )
    first = suite.run(*args)
    failed = {r.nodeid for r in task_reports(first) if r.failed}
    second = suite.run(*args, "--lf")
    assert {r.nodeid for r in task_reports(second)} == failed
    assert len(second.inference) == len(failed)


def test_xdist_gives_the_same_report_as_a_serial_run(suite, shared_data):
    args = (
        f"--tasks={shared_data / 'public_150.json'}",
        f"--generations={shared_data / 'inference' / 'scored_0.68253.json'}",
    )
    serial = suite.run(*args)
    serial_report, serial_inference = serial.report, serial.inference
    parallel = suite.run(*args, "-n", "2", subprocess=True)
    assert parallel.inference == serial_inference
    strip = lambda report: [  # noqa: E731 - status/score per task is what must agree
        (t["task_id"], t["score"], t["status"]) for t in report["tasks"]
    ]
    assert strip(parallel.report) == strip(serial_report)
    assert parallel.report["summary"]["overall"] == serial_report["summary"]["overall"]
    assert parallel.report["meta"]["workers"] == 2


def test_report_json_has_summary_tasks_and_meta(suite):
    run = suite.run(f"--generations={OPEN150_ANSWERS}", "-m", "yaml")
    report = run.report
    record = report["tasks"][0]
    for key in (
        "task_id",
        "task_name",
        "output_type",
        "score",
        "syntax_ok",
        "key_score",
        "missing_paths",
        "reasons",
        "generation",
        "status",
    ):
        assert key in record
    summary = report["summary"]
    for key in ("overall", "by_format", "by_task_type", "parse_rate", "task_mean"):
        assert key in summary
    assert summary["by_format"]["json"]["n"] == 0 and summary["by_format"]["yaml"]["n"] == 35
    for key in ("backend", "versions", "engine_builds", "timings"):
        assert key in report["meta"]
    assert OPEN150.name in report["meta"]["tasks_file"]


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_junit_xml_carries_each_tasks_score(suite, pytester, family):
    import xml.etree.ElementTree as ET

    run = suite.run(
        f"--generations={OPEN150_ANSWERS}",
        "-m",
        "csv",
        f"--junitxml={pytester.path / 'j.xml'}",
        "-o",
        f"junit_family={family}",
    )
    cases = [
        case
        for case in ET.parse(pytester.path / "j.xml").iter("testcase")
        if "preflight" not in case.get("classname", "")
    ]
    assert run.result.ret == pytest.ExitCode.OK
    assert len(cases) == 20
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        assert props["structeval_score"] == "1.0"
        assert props["structeval_syntax_ok"] == "True"


def test_replay_needs_neither_vllm_nor_torch(suite, pytester, monkeypatch):
    blocked = pytester.path / "blocked"
    for name in ("vllm", "torch"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed')")
    monkeypatch.setenv("PYTHONPATH", f"{blocked}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    run = suite.run(f"--generations={OPEN150_ANSWERS}", "-m", "toml", subprocess=True)
    assert run.result.ret == pytest.ExitCode.OK, run.result.stdout.str()[-2000:]
    assert len(run.inference) == 25
    assert run.report["summary"]["overall"] == 1.0


def test_snapshots_of_tasks_gone_from_the_task_file_are_reported(suite, pytester):
    tasks = [task_record(t, "JSON", ["a"]) for t in ("keep", "gone")]
    gens = [{"task_id": t["task_id"], "generation": '{"a": 1}'} for t in tasks]
    pytester.makefile(
        ".json",
        all_tasks=json.dumps(tasks),
        one_task=json.dumps(tasks[:1]),
        gens=json.dumps(gens),
        one_gen=json.dumps(gens[:1]),
    )
    first = suite.run("--tasks=all_tasks.json", "--generations=gens.json")
    assert first.result.ret == pytest.ExitCode.OK
    # Same replay source name, so the same snapshot folder; "gone" is no longer a task.
    (pytester.path / "gens.json").write_text(json.dumps(gens[:1]), "utf-8")
    subset = suite.run("--tasks=all_tasks.json", "--generations=gens.json", "-k", "keep")
    assert "no longer in" not in subset.result.stdout.str()  # deselected is not gone
    second = suite.run("--tasks=one_task.json", "--generations=gens.json")
    second.result.stdout.fnmatch_lines(
        ["snapshots: 1 for tasks no longer in one_task.json*gone.json"]
    )


def test_collect_only_counts_the_checks_and_the_tasks(suite):
    from pytest_structeval.preflight import CHECK_NAMES

    run = suite.run(f"--generations={OPEN150_ANSWERS}", "--co", "-q")
    assert run.result.ret == pytest.ExitCode.OK
    run.result.stdout.fnmatch_lines([f"{len(CHECK_NAMES) + 150} tests collected*"])
