"""A fresh run writes its snapshots without a warning, with every syrupy the project allows.

syrupy's write_snapshot warned "Can not relate snapshot location" for each snapshot file not
named after the test file: 150 warnings on a fresh run of the bundled set with syrupy 5.5.3
(issue 21, F). The oldest allowed syrupy (pyproject.toml: 5.3, the first with
``update_new_snapshots_only``) and 5.5.3 are installed from the index into a directory put
first on the path; without pip or the index those cases skip.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from support import OPEN150_ANSWERS, run_pytest


@pytest.fixture(scope="module")
def syrupy_release(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``syrupy_release("5.5.3")``: a directory holding that release alone (installed once)."""
    installed: dict[str, Path] = {}

    def install(version: str) -> Path:
        if version not in installed:
            target = tmp_path_factory.mktemp(f"syrupy-{version}")
            done = subprocess.run(
                [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                 "--disable-pip-version-check", f"--target={target}", f"syrupy=={version}"],
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                pytest.skip(f"pip cannot install syrupy=={version}: {done.stderr.strip()[-300:]}")
            installed[version] = target
        return installed[version]

    return install


def imported_syrupy(project: Path, pythonpath: str) -> Path:
    """Where a run in ``project`` with ``pythonpath`` in front (as run_pytest puts it) imports
    syrupy from, so that a case cannot pass on the installed release by mistake."""
    path = os.pathsep.join(filter(None, [str(project), pythonpath, os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", "import syrupy; print(syrupy.__file__)"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip())


@pytest.mark.parametrize("version", ["installed", "5.3.0", "5.5.3"])
def test_fresh_replay_writes_150_snapshots_without_a_warning(version, syrupy_release, tmp_path):
    env = {}
    if version != "installed":
        target = syrupy_release(version)
        env["PYTHONPATH"] = str(target)
        assert imported_syrupy(tmp_path, str(target)).is_relative_to(target)

    run = run_pytest(tmp_path, "out", f"--generations={OPEN150_ANSWERS}", "-q", env=env)

    assert run.returncode == 0, run.output[-3000:]
    assert len(list(tmp_path.glob("__structeval_snapshots__/*/*.*"))) == 150
    assert "Can not relate" not in run.output, run.output[-3000:]
    [summary] = re.findall(r"^\d+ passed.* in [\d.]+s.*$", run.output, re.MULTILINE)
    assert "warning" not in summary, run.output[-3000:]
