"""A bad engine argument is one usage error before any engine starts, not a traceback in every
task: checked against the installed vLLM's own argument names and types."""

from __future__ import annotations

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
