"""What a failing run of the bundled 150 tasks prints, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json

from pytest_structeval.tasks import BUNDLED_TASKS


def test_a_failing_task_shows_its_reason_without_pytests_traceback_hint(suite, pytester):
    tasks = json.loads(BUNDLED_TASKS.read_text(encoding="utf-8"))
    bad = [{"task_id": t["task_id"], "generation": "nonsense"} for t in tasks]
    pytester.path.joinpath("bad.json").write_text(json.dumps(bad), encoding="utf-8")
    run = suite.run("--generations=bad.json", subprocess=True)
    text = run.result.stdout.str()
    assert run.result.ret == 1
    assert text.count("FAILED open150.json::") == 150
    # The scorer's reason is the failure; pytest's hint about hidden frames (one per task)
    # pointed at frames that are not part of it.
    assert "syntax error" in text
    assert "--full-trace" not in text
