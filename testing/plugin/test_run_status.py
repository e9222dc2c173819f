"""What a run says about itself, as a user sees it: a run the preflight blocked fails with its
cause on one line; the phase lines add up to the wall time, in one process and under xdist."""

from __future__ import annotations

import re
import sys

import pytest
from support import OPEN150_ANSWERS

from pytest_structeval.backends import platform


def test_a_run_the_preflight_blocks_fails_naming_the_cause(suite, pytester) -> None:
    """-m smoke deselects the preflight items, so only the tasks' skip said the run was
    blocked: it used to end with exit status 0 and nothing on the screen saying why."""
    (pytester.path / "afile").write_text("not a directory")
    result = pytester.runpytest(
        f"--generations={OPEN150_ANSWERS}",
        f"--out={pytester.path / 'afile' / 'out'}",
        "-m",
        "smoke",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    blocked = [
        line
        for line in result.outlines
        if "preflight failed: " in line and line.endswith("; no task ran")
    ]
    assert len(blocked) == 1, result.outlines
    assert blocked[0].startswith("structeval: preflight failed: out-dir-writable: ")
    assert "afile is a file" in blocked[0]
    result.assert_outcomes(skipped=19, deselected=150)


def phase_lines(lines: list[str]) -> dict[str, float]:
    found = {}
    for line in lines:
        match = re.match(r"structeval: (.+) (\d+\.\d) s$", line)
        if match:
            found[match[1]] = float(match[2])
    return found


def test_the_phase_lines_add_up_to_the_wall_time(suite) -> None:
    run = suite.run(f"--generations={OPEN150_ANSWERS}", "-m", "smoke", subprocess=True)
    assert run.result.ret == 0
    lines = run.result.outlines
    phases = phase_lines(lines)
    for name in ("start-up (interpreter, pytest, plugins)", "collection", "preflight", "scoring"):
        assert name in phases, lines
    total = [line for line in lines if line.startswith("structeval: phases ")]
    assert len(total) == 1, lines
    named, between, wall = map(float, re.findall(r"(\d+\.\d) s", total[0]))
    assert abs(named + between - wall) <= 0.15
    listed = sum(v for k, v in phases.items() if not k.startswith("pytest and the plugin"))
    assert abs(listed - named) <= 0.1 * len(phases)


def test_phase_lines_reach_the_terminal_under_xdist(suite) -> None:
    pytest.importorskip("xdist")
    run = suite.run(f"--generations={OPEN150_ANSWERS}", "-m", "smoke", "-n", "2", subprocess=True)
    assert run.result.ret == 0
    # A worker's line may follow the progress dots on the same terminal line.
    found = [re.search(r"structeval: (\[gw\d\]) (.*)", line) for line in run.result.outlines]
    from_workers = [match for match in found if match]
    assert {match[1] for match in from_workers} == {"[gw0]", "[gw1]"}, run.result.outlines
    assert all(match[2].startswith("preflight ") for match in from_workers)


def test_the_engine_forks_unless_something_forbids_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_WORKER_MULTIPROC_METHOD", raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert platform.start_method() == "fork"
    # A CUDA context in this process: a forked engine could not use it (stub: only the flag).
    cuda = type("cuda", (), {"is_initialized": staticmethod(lambda: True)})
    monkeypatch.setitem(sys.modules, "torch", type("torch", (), {"cuda": cuda}))
    assert platform.start_method() == "spawn"
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "forkserver")  # the user's choice wins
    assert platform.start_method() == "forkserver"
