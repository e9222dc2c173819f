"""One engine failure is one error on the terminal (issue 21, D): a run of the 19 smoke tasks
whose engine cannot start shows the cause once, on the first task, without a traceback of ours
or a chained copy of the message; the other tasks skip and point to it.

The engine's own processes cannot import vLLM's CPU worker (broken_engine_env, as in
test_ladder.py), which fails the start inside the engine as a missing kernel library does on a
GPU, after the arguments passed the up-front check."""

from __future__ import annotations

import re
from pathlib import Path

from support import run_pytest


def test_a_failed_engine_start_is_one_error_and_the_other_tasks_point_to_it(
    tmp_path: Path, broken_engine_env: dict[str, str]
) -> None:
    (tmp_path / "conftest.py").write_text("", encoding="utf-8")  # the user's project root
    run = run_pytest(
        tmp_path,
        "out",
        "--model=builtin:tiny",
        "-m",
        "smoke",
        "--vllm-arg=enforce_eager=true",
        "-rs",
        env=broken_engine_env,
        timeout=900,
    )
    output = run.output
    assert run.returncode == 1, output[-3000:]
    # pytest's closing line (run.output is stdout, then the engine processes' stderr).
    summary = re.findall(r"^=+ (.* in [\d.]+s.*) =+$", output, re.MULTILINE)[-1]
    assert re.search(r"\b18 skipped\b", summary) and re.search(r"\b1 error\b", summary), summary
    assert "failed" not in summary and "passed" not in summary, summary

    # The pytest part of the output: what the engine's processes logged comes before it.
    errors = output.split("= ERRORS =", 1)[1].split("= warnings summary =", 1)[0]
    errors = errors.split("= short test summary info =", 1)[0]
    assert len(re.findall(r"_ ERROR at setup of ", errors)) == 1, errors
    assert "ERROR at setup of open150-text-to-toml-01 " in errors, errors
    cause = "ModuleNotFoundError: No module named 'vllm.v1.worker.cpu_worker'"
    assert errors.count(cause) == 1, errors  # once: no chained copy
    assert re.search(rf"vLLM could not start \S+tiny\S*: {re.escape(cause)}", errors), errors
    assert "Traceback" not in errors and "The above exception" not in errors, errors
    assert "During handling" not in errors, errors

    # Each other task: skipped, pointing to the one that shows the error.
    [skips] = re.findall(r"^SKIPPED \[(\d+)\] .*$", output, re.MULTILINE)
    assert skips == "18", output[-3000:]
    assert re.search(
        r"^SKIPPED \[18\] .*no generation: the engine did not start \(the error is on "
        r"\S*open150-text-to-toml-01",
        output,
        re.MULTILINE,
    ), output[-3000:]
