"""What a failing run of the bundled 150 tasks prints, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json

from pytest_structeval.tasks import BUNDLED_TASKS


def test_a_failing_task_shows_its_reason_without_pytests_traceback_hint(suite, pytester):
    tasks = json.loads(BUNDLED_TASKS.read_text(encoding="utf-8"))
    bad = [{"task_id": t["task_id"], "generation": "nonsense"} for t in tasks]
    pytester.path.joinpath("bad.json").write_text(json.dumps(bad), encoding="utf-8")
    # The details, where the hint was (by default a failing task is one line).
    run = suite.run("--generations=bad.json", "--tb=short", subprocess=True)
    text = run.result.stdout.str()
    assert run.result.ret == 1
    assert text.count("FAILED open150.json::") == 150
    # The scorer's reason is the failure; pytest's hint about hidden frames (one per task)
    # pointed at frames that are not part of it.
    assert "syntax error" in text
    assert "--full-trace" not in text


def test_a_failing_run_of_150_tasks_is_one_line_per_task_with_its_reason(
    suite, pytester, monkeypatch
):
    tasks = json.loads(BUNDLED_TASKS.read_text(encoding="utf-8"))
    bad = [{"task_id": t["task_id"], "generation": "nonsense"} for t in tasks]
    pytester.path.joinpath("bad.json").write_text(json.dumps(bad), encoding="utf-8")
    # A wide terminal: pytest cuts a short-summary line to the terminal's width.
    monkeypatch.setenv("COLUMNS", "250")
    text = suite.run("--generations=bad.json", subprocess=True).result.stdout.str()
    lines = text.splitlines()
    failed = [line for line in lines if line.startswith("FAILED open150.json::")]
    assert len(failed) == 150
    assert all(" - score 0." in line for line in failed), failed[:3]
    assert any("not valid TOML (line 1, column " in line for line in failed)
    assert any(" key paths (missing " in line for line in failed)
    # The task ids appear once each (their line), not in a FAILURES block besides.
    assert "FAILURES" not in text
    assert text.count("open150-text-to-toml-01") == 1
    # 150 task lines; the rest is pytest's header and counts and the plugin's summary tables
    # (per format; per task type only with -v), phases and verdict.
    assert len(lines) <= 150 + 40, len(lines)
    assert "their details with -v" in text

    detailed = suite.run("--generations=bad.json", "-v", subprocess=True).result.stdout.str()
    assert "FAILURES" in detailed
    assert "0.2*syntax 0 + 0.8*keys" in detailed and "missing: " in detailed
    short = suite.run("--generations=bad.json", "--tb=short", subprocess=True).result
    assert "0.2*syntax 0 + 0.8*keys" in short.stdout.str()
