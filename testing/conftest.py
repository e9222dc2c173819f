"""Shared helpers for the project's own tests (the evaluation suite itself is in tests/)."""

from __future__ import annotations

import json
import os
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


# -- engines --------------------------------------------------------------------------------

# vLLM's CPU default KV cache is most of the machine's memory; 1 GiB is plenty for the tests.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, built straight into a directory (not via builtin:tiny), so every engine
    test also checks that an arbitrary local model directory works as --model=/path."""
    from pytest_structeval.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tiny_lora_adapter(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A PEFT-format LoRA adapter for the tiny model (r=8 on q_proj and v_proj), written by
    hand: no peft needed."""
    return build_lora_adapter(tiny_model, tmp_path_factory.mktemp("lora") / "adapter")


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
