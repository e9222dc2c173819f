"""A bad engine argument is one usage error before any engine starts, not a traceback in every
task: checked against the installed vLLM's own argument names and types."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pytest_structeval.backends.engine import EngineArgumentError, validate_engine_args


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("max_num_seqs=0", "--vllm-arg max_num_seqs=0: Input should be greater than or equal to 1"),
        ("max_num_sqs=8", "has no engine argument 'max_num_sqs'; did you mean max_num_seqs?"),
        (
            "enforce_eager=maybe",
            "--vllm-arg enforce_eager='maybe': Input should be a valid boolean",
        ),
        ("gpu_memory_utilization=1.5", "Input should be less than or equal to 1"),
    ],
)
def test_a_bad_engine_argument_is_exit_4_naming_it(suite, argument, message):
    run = suite.run(
        "--model=builtin:tiny", "-k", "CSV to JSON", "--vllm-arg", argument, subprocess=True
    )
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in run.result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1 and message in errors[0], run.result.errlines[-5:]
    assert "Traceback" not in run.result.stdout.str() + run.result.stderr.str()
    assert "EngineCore" not in run.result.stdout.str() + run.result.stderr.str()


def test_good_engine_arguments_pass() -> None:
    validate_engine_args({"max_num_seqs": 8, "enforce_eager": True, "block_size": 16})
    with pytest.raises(EngineArgumentError, match="dtype"):
        validate_engine_args({"dtype": "float99"})


# The Python API (no pytest plugin) imports vLLM through the backend: the environment it reads
# is set first there, as in a pytest run. Checked by vLLM itself, in a fresh interpreter.
VLLM_SEES = """
from pytest_structeval.backends.engine import validate_engine_args

validate_engine_args({"max_num_seqs": 8})
import vllm.envs as envs

print(envs.VLLM_NO_USAGE_STATS, envs.VLLM_WORKER_MULTIPROC_METHOD)
"""


def test_the_backend_sets_vllms_environment_before_importing_it() -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VLLM_NO_USAGE_STATS", "VLLM_WORKER_MULTIPROC_METHOD", "DO_NOT_TRACK")
    }
    done = subprocess.run(
        [sys.executable, "-c", VLLM_SEES], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # fork: vLLM's default and the cheapest; nothing in this process forbids it (no CUDA)
    assert done.stdout.split()[-2:] == ["True", "fork"]
