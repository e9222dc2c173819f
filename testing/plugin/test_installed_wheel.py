"""The plugin as a user gets it: built into a wheel, installed (not editable) next to nothing of
this checkout, run from an empty directory that is the user's own project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from support import OPEN150_ANSWERS, REPO, XDIST_WORKER_VARS


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as the README's `pip wheel . --no-deps` builds it."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(dist),
            str(REPO),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = dist.glob("pytest_structeval-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pytest_structeval/tasksets/open150.json" in names
    assert not any(name.startswith(("testing/", "tests/", "bench/")) for name in names)
    return wheel


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding only the wheel's installed files (the dependencies come from this
    environment; the editable install of the checkout is shadowed by it on PYTHONPATH)."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    return target


def pytest_in(project: Path, site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site)}
    for var in XDIST_WORKER_VARS:
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_installed_plugin_evaluates_from_an_empty_directory(installed, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_own.py").write_text("def test_mine():\n    assert True\n", "utf-8")
    tasks = project / "public_150.json"
    generations = project / "inference.json"
    tasks.write_bytes((installed / "pytest_structeval/tasksets/open150.json").read_bytes())
    generations.write_bytes(OPEN150_ANSWERS.read_bytes())

    # A plain run is the project's own tests only: no task, no check.
    plain = pytest_in(project, installed, "-q")
    assert plain.returncode == 0, plain.stdout
    assert "1 passed" in plain.stdout and "open150" not in plain.stdout

    where = pytest_in(
        project, installed, "-q", "--co", "--generations=inference.json", "--tasks=public_150.json"
    )
    items = [line for line in where.stdout.splitlines() if "::" in line]
    assert len([i for i in items if "::preflight::" in i]) >= 10
    assert len([i for i in items if i.startswith("public_150.json::open150-")]) == 150

    run = pytest_in(
        project,
        installed,
        "-q",
        "--tasks=public_150.json",
        "--generations=inference.json",
        "--out=out",
    )
    assert run.returncode == 0, run.stdout[-2000:]
    report = json.loads((project / "out" / "report.json").read_text("utf-8"))
    assert report["summary"]["n_tasks"] == 150 and report["summary"]["overall"] == 1.0
    assert (project / "out" / "inference.json").is_file()
    assert (project / "out" / "report.html").is_file()
    # The package ran from the wheel's files, not from this checkout.
    version_check = subprocess.run(
        [sys.executable, "-c", "import pytest_structeval; print(pytest_structeval.__file__)"],
        env={**os.environ, "PYTHONPATH": str(installed)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert version_check.stdout.startswith(str(installed))


def test_the_bundled_set_needs_no_tasks_option(installed, tmp_path):
    run = pytest_in(tmp_path, installed, "-q", f"--generations={OPEN150_ANSWERS}", "--out=out")
    assert run.returncode == 0, run.stdout[-2000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text("utf-8"))
    assert report["meta"]["tasks_file"].startswith(str(installed))
    assert report["summary"]["n_tasks"] == 150


def test_the_sdist_builds_and_carries_the_package_data(tmp_path):
    """The other artifact a release uploads: built by setuptools' own backend, as
    ``python -m build --sdist`` calls it, with the bundled tasks and the README inside."""
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from setuptools import build_meta; "
            "print(build_meta.build_sdist(sys.argv[1]))",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    name = build.stdout.strip().splitlines()[-1]
    with tarfile.open(tmp_path / name) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {
        "pyproject.toml",
        "README.md",
        "plugin/pytest_structeval/tasksets/open150.json",
    } <= names


def test_the_scoring_only_route_in_a_clean_virtual_environment(wheel, tmp_path):
    """The README's scoring-only install, run as written: a new virtual environment with
    nothing of this one, the wheel installed with its dependencies from the package index,
    then a submission scored from an empty directory. No vLLM, no torch."""
    # Nothing of this checkout on the path: pip would take its egg-info for the installed
    # distribution and skip the wheel.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", *XDIST_WORKER_VARS)}
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300, env=env)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        timeout=600,
        env=env,
    )
    project = tmp_path / "project"
    project.mkdir()
    run = subprocess.run(
        [str(python), "-m", "pytest", "-q", f"--generations={OPEN150_ANSWERS}", "--out=out"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    report = json.loads((project / "out" / "report.json").read_text("utf-8"))
    assert report["summary"]["n_tasks"] == 150 and report["summary"]["overall"] == 1.0
    absent = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print(u.find_spec('vllm'), u.find_spec('torch'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert absent.stdout.split() == ["None", "None"]


def test_bundled_ids_do_not_depend_on_where_the_package_is_installed(wheel, tmp_path):
    """A virtual environment inside the project put the install path into every id
    (``.venv/lib/python3.11/site-packages/...``) and JUnit classname."""
    project = tmp_path / "project"
    site = project / ".venv" / "lib" / "site-packages"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=300,
    )
    listed = pytest_in(project, site, "-q", "--co", f"--generations={OPEN150_ANSWERS}")
    ids = [line for line in listed.stdout.splitlines() if "::" in line]
    assert ids and all(i.startswith("open150.json::") for i in ids), listed.stdout[-2000:]
