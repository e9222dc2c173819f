"""Nothing optional stands between finished generations and the files, and bad ini values are
usage errors like bad command-line values."""

from __future__ import annotations

import json
import os

import pytest
from support import OPEN150_ANSWERS

from pytest_structeval import __version__
from pytest_structeval.files import write_atomic

# Loaded into the inner session before the plugin: the installed package's metadata is gone,
# as when the plugin runs from a source tree that was never installed.
NO_METADATA = """
import importlib.metadata

_version = importlib.metadata.version


def version(name):
    if name.replace("_", "-") == "pytest-structeval":
        raise importlib.metadata.PackageNotFoundError(name)
    return _version(name)


importlib.metadata.version = version
"""

REPORT_FAILS = """
from pytest_structeval.report.report import Report


def build(*args, **kwargs):
    raise RuntimeError("the report builder broke")


Report.build = build
"""


def test_without_package_metadata_every_output_is_written(suite, pytester):
    pytester.makeconftest(NO_METADATA)
    # A subprocess: the patches above must not leak into this process's other runs.
    run = suite.run(f"--generations={OPEN150_ANSWERS}", "-m", "csv", subprocess=True)
    assert run.result.ret == pytest.ExitCode.OK, run.result.stdout.str()[-2000:]
    assert len(run.inference) == 20
    assert run.report["meta"]["versions"]["pytest-structeval"] == __version__
    assert (run.out / "report.html").is_file()


def test_a_report_that_cannot_be_built_still_leaves_inference_json(suite, pytester):
    pytester.makeconftest(REPORT_FAILS)
    run = suite.run(f"--generations={OPEN150_ANSWERS}", "-m", "toml", subprocess=True)
    assert run.result.ret == pytest.ExitCode.TESTS_FAILED
    submitted = {g["task_id"]: g["generation"] for g in run.inference}
    answers = {g["task_id"]: g["generation"] for g in json.loads(OPEN150_ANSWERS.read_text())}
    assert len(submitted) == 25 and all(answers[t] == g for t, g in submitted.items())
    assert not (run.out / "report.json").exists()
    run.result.stdout.fnmatch_lines(
        [
            "structeval: the reports were not all written (RuntimeError: the report builder "
            "broke); inference.json holds every generation",
            f"written: {run.out / 'inference.json'}",
        ]
    )


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        ("structeval_format_weights = json=abc", "format weights: json='abc' is not a number"),
        ("structeval_format_weights = jsn=1", "format weights: expected FORMAT=WEIGHT"),
    ],
)
def test_a_bad_ini_value_is_a_usage_error(suite, pytester, ini, message):
    pytester.makeini(f"[pytest]\n{ini}\n")
    run = suite.run(f"--generations={OPEN150_ANSWERS}")
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {message}" in run.result.stderr.str()
    assert "Traceback" not in run.result.stderr.str() + run.result.stdout.str()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask_and_leave_no_temporary(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_atomic(tmp_path / "out" / "report.json", "{}\n")
        write_atomic(tmp_path / "out" / "report.json", b"[]\n")  # replaces the first
    finally:
        os.umask(previous)
    written = tmp_path / "out" / "report.json"
    assert written.read_bytes() == b"[]\n"
    assert written.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [p.name for p in written.parent.iterdir()] == ["report.json"]
