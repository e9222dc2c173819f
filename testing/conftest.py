"""Shared helpers for the project's own tests (the evaluation suite itself is in tests/)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TASKSETS = REPO / "plugin" / "pytest_structeval" / "tasksets"
OPEN150 = TASKSETS / "open150.json"
OPEN150_ANSWERS = TASKSETS / "open150.answers.json"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real competition files); a user's clone has none, so skip there."""
    if not (SHARED_DATA / "public_150.json").exists():
        pytest.skip("../shared/data is not present in this checkout")
    return SHARED_DATA


@dataclass
class SuiteRun:
    result: pytest.RunResult
    out: Path

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "report.json").read_text(encoding="utf-8"))

    @property
    def inference(self) -> list[dict[str, str]]:
        return json.loads((self.out / "inference.json").read_text(encoding="utf-8"))


class Suite:
    """An empty pytester directory, as a user's project is: the plugin collects the tasks
    itself. ``run`` returns the result and the outputs."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.out = pytester.path / "out"

    def run(self, *args: str, subprocess: bool = False) -> SuiteRun:
        argv = [f"--out={self.out}", *args]
        if subprocess:
            result = self.pytester.runpytest_subprocess(*argv)
        else:
            result = self.pytester.runpytest(*argv)
        return SuiteRun(result, self.out)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Suite:
    return Suite(pytester)


@pytest.fixture(autouse=True)
def _inner_runs_are_not_xdist_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """When this suite itself runs under ``-n``, the variables xdist sets for its workers would
    make the runs that pytester starts (syrupy and our plugin read them) behave as workers."""
    for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(name, raising=False)
