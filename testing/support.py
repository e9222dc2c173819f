"""What the project's own tests share besides fixtures (those are in conftest.py): paths,
and helpers that run the plugin. A module of its own so that tests import it by a name no
other file has (`from support import ...`); every conftest.py is a module named "conftest"."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
TASKSETS = REPO / "plugin" / "pytest_structeval" / "tasksets"
OPEN150 = TASKSETS / "open150.json"
OPEN150_ANSWERS = TASKSETS / "open150.answers.json"
# What xdist sets in its workers' environment; a run these tests start must not inherit them,
# or syrupy and the plugin would take it for a worker.
XDIST_WORKER_VARS = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


class Outputs:
    """The files a finished run wrote to its --out directory ``out``."""

    out: Path

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.out / "report.json").read_text(encoding="utf-8"))

    @property
    def inference(self) -> list[dict[str, str]]:
        return json.loads((self.out / "inference.json").read_text(encoding="utf-8"))


@dataclass
class SuiteRun(Outputs):
    result: pytest.RunResult
    out: Path


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


@dataclass
class Run(Outputs):
    """A finished ``python -m pytest`` process and its --out directory."""

    returncode: int
    output: str
    out: Path


def run_pytest(
    project: Path, name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 1500
) -> Run:
    """``python -m pytest ARGS --out=project/NAME`` in a fresh process in ``project``, as a user
    runs the evaluation in a project of their own. ``env`` adds variables; its PYTHONPATH is put
    in front of this process's (``project`` is on it too, for ``-p`` plugins kept there)."""
    extra = dict(env or {})
    paths = [str(project), extra.pop("PYTHONPATH", ""), os.environ.get("PYTHONPATH", "")]
    full = {**os.environ, **extra, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    for var in XDIST_WORKER_VARS:
        full.pop(var, None)
    out = project / name
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--out={out}", *args],
        cwd=project,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Run(done.returncode, done.stdout + done.stderr, out)


# -- a LoRA adapter for the tiny model ----------------------------------------------------

RANK = 8
ALPHA = 16  # scaling alpha/r = 2
TARGETS = ("q_proj", "v_proj")


def build_lora_adapter(model_dir: Path, target: Path, *, seed: int = 1234) -> Path:
    """Write a PEFT-format LoRA adapter (r=8 on q_proj and v_proj) for the model in
    ``model_dir`` into ``target``; deterministic for a given ``seed``.

    Shapes follow the base model's ``config.json``: lora_A is (r, in_features) and lora_B is
    (out_features, r), where q_proj maps hidden_size -> num_attention_heads * head_dim and
    v_proj maps hidden_size -> num_key_value_heads * head_dim."""
    import torch
    from safetensors.torch import save_file

    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    hidden = config["hidden_size"]
    head_dim = config.get("head_dim") or hidden // config["num_attention_heads"]
    out_features = {
        "q_proj": config["num_attention_heads"] * head_dim,
        "v_proj": config["num_key_value_heads"] * head_dim,
    }
    generator = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for layer in range(config["num_hidden_layers"]):
        for module in TARGETS:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            # PEFT initialises lora_B to zero (a no-op adapter); a trained one is not, and
            # these values are far larger than the base weights, so the output must move.
            tensors[f"{prefix}.lora_A.weight"] = (
                torch.randn(RANK, hidden, generator=generator) * 0.5
            )
            tensors[f"{prefix}.lora_B.weight"] = (
                torch.randn(out_features[module], RANK, generator=generator) * 0.5
            )
    target.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, str(target / "adapter_model.safetensors")
    )
    adapter_config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": str(model_dir),
        "r": RANK,
        "lora_alpha": ALPHA,
        "lora_dropout": 0.0,
        "target_modules": list(TARGETS),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "inference_mode": True,
    }
    (target / "adapter_config.json").write_text(
        json.dumps(adapter_config, indent=2), encoding="utf-8"
    )
    return target
