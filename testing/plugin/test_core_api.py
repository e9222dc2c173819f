"""The core without pytest: the same evaluation, the same report.json as the plugin."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support import OPEN150, OPEN150_ANSWERS

from pytest_structeval import Evaluation, Settings

# Run in a fresh interpreter: pytest is never imported, and the check at the end proves it.
CORE_RUN = """
import json, sys
from pathlib import Path
from pytest_structeval import Evaluation, Settings

out = Path(sys.argv[2])
with Evaluation(Settings.of(tasks=sys.argv[1], generations=sys.argv[3], out_dir=out)) as evaluation:
    report = evaluation.run()
    evaluation.write(report)
assert "pytest" not in sys.modules and "_pytest" not in sys.modules, "the core imported pytest"
print(json.dumps(report.summary["overall"]))
"""

# What only a pytest session has: snapshots, the pytest version, timings and process counts.
SESSION_ONLY = {"snapshot"}


def comparable(report: dict) -> dict:
    meta = {k: v for k, v in report["meta"].items() if k not in ("timings", "workers")}
    meta["versions"] = {k: v for k, v in meta["versions"].items() if k != "pytest"}
    summary = {k: v for k, v in report["summary"].items() if k != "snapshots"}
    tasks = [{k: v for k, v in t.items() if k not in SESSION_ONLY} for t in report["tasks"]]
    return {"summary": summary, "tasks": tasks, "meta": meta}


def core_report(tasks: Path, generations: Path, out: Path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CORE_RUN, str(tasks), str(out), str(generations)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads((out / "report.json").read_text("utf-8"))


@pytest.mark.parametrize("source", ["bundled answers", "real submission"])
def test_the_core_gives_the_plugins_report(suite, tmp_path, source, request):
    if source == "bundled answers":
        tasks, generations = OPEN150, OPEN150_ANSWERS
    else:
        shared = request.getfixturevalue("shared_data")
        tasks = shared / "public_150.json"
        generations = shared / "inference" / "scored_0.68253.json"
    run = suite.run(f"--tasks={tasks}", f"--generations={generations}")
    assert run.result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
    core = core_report(tasks, generations, tmp_path / "core")
    assert comparable(core) == comparable(run.report)
    assert json.loads((tmp_path / "core" / "inference.json").read_text("utf-8")) == run.inference


@pytest.mark.parametrize("order", ["generator first", "generator last"])
def test_meta_describes_the_worker_that_generated(tmp_path, order):
    """Under xdist the idle worker's backend never started: its ``endpoint`` is None. The
    merged meta takes the generating worker's description whichever worker finished first."""
    generator = {
        "backend": "vllm-serve",
        "endpoint": "http://127.0.0.1:8123/v1",
        "servers_started": 1,
        "generated": 150,
        "timings": {"generate": 9.0},
    }
    idle = {
        "backend": "vllm-serve",
        "endpoint": None,
        "servers_started": 0,
        "generated": 0,
        "timings": {},
    }
    parts = [generator, idle] if order == "generator first" else [idle, generator]
    evaluation = Evaluation(Settings.of(tasks=OPEN150, out_dir=tmp_path))
    meta = evaluation.meta(parts)
    assert meta["endpoint"] == "http://127.0.0.1:8123/v1"
    assert meta["timings"] == {"generate": 9.0}
    assert (meta["servers_started"], meta["generated"], meta["workers"]) == (1, 150, 2)
