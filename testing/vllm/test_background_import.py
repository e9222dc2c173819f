"""The vLLM import beside the preflight (issue 21): ``import vllm`` alone loads almost nothing
(the package loads ``LLM``, its configs and its engine arguments on first use), so the
background thread must import what the argument check and the engine start use. Measured on
an H100 with py-spy, leaving them to the main thread cost 5-7 s that no phase overlapped."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("vllm")

# What the main thread does after the preflight: check the engine arguments, then start the
# engine with sampling parameters (structured outputs among them).
MAIN_THREAD = """
validate_engine_args({"enforce_eager": True, "max_num_seqs": 4})
from vllm import LLM, SamplingParams
from vllm.sampling_params import StructuredOutputsParams
from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS
"""


def vllm_modules_left(warm_up: str) -> list[str]:
    """The vLLM modules the main thread still imports after ``warm_up`` ran."""
    script = "\n".join(
        [
            "import json, sys",
            "import threading",
            "from pytest_structeval.backends.engine import import_engine_modules, validate_engine_args",
            warm_up,
            "before = set(sys.modules)",
            MAIN_THREAD,
            "new = sorted(m for m in set(sys.modules) - before if m.startswith('vllm'))",
            "print('NEW ' + json.dumps(new))",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("NEW "))
    return json.loads(line[4:])


def test_the_background_import_leaves_no_vllm_module_to_the_main_thread() -> None:
    assert (
        vllm_modules_left("t = threading.Thread(target=import_engine_modules); t.start(); t.join()")
        == []
    )


def test_import_vllm_alone_would_leave_the_heavy_modules_to_it() -> None:
    """The reason for ``ENGINE_MODULES``: vLLM's lazy package."""
    left = vllm_modules_left("import vllm")
    assert "vllm.config" in left and "vllm.engine.arg_utils" in left, left
