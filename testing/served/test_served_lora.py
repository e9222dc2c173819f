"""A LoRA adapter through ``--serve``: the session's server loads it as a LoRA module and every
request names it; the answers are the in-process engine's with the same adapter (which
testing/vllm/test_lora.py shows differ from the base model's).

One server (with LoRA enabled) and one in-process engine; 30-90 s each on 2 cores.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_structeval.backends.base import Generation
from pytest_structeval.backends.served import ADAPTER_MODULE, VllmServeBackend
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings
from pytest_structeval.tasks import BUNDLED_TASKS, Task, TaskSet


@pytest.fixture(scope="module")
def lora_config(tiny_model: Path, tiny_lora_adapter: Path) -> Settings:
    return Settings.of(
        model=str(tiny_model),
        adapter=str(tiny_lora_adapter),
        max_tokens=16,
        vllm_args={"enforce_eager": True},
    )


def texts(generations: dict[str, Generation]) -> dict[str, str]:
    return {task_id: g.text for task_id, g in generations.items()}


def test_the_served_adapter_answers_as_the_in_process_one(
    lora_config: Settings, tmp_path: Path
) -> None:
    tasks: list[Task] = list(TaskSet.load(BUNDLED_TASKS))[:6]
    served = VllmServeBackend(
        lora_config.engine,
        lora_config.sampling,
        lora_config.serving,
        log_dir=tmp_path,
        progress=False,
    )
    try:
        generations = served.generate(tasks)
        meta = served.meta()
    finally:
        served.close()
    command = meta["server"]["command"]
    assert "--enable-lora" in command
    assert command[command.index("--max-lora-rank") + 1] == "8"
    assert (
        command[command.index("--lora-modules") + 1]
        == f"{ADAPTER_MODULE}={lora_config.engine.adapter}"
    )
    assert meta["served_adapter"]["id"] == ADAPTER_MODULE
    assert meta["served_adapter"]["parent"] == meta["served_model"]["id"]

    offline = VllmBackend(lora_config.engine, lora_config.sampling, progress=False)
    try:
        expected = offline.generate(tasks)
    finally:
        offline.close()
    assert texts(generations) == texts(expected)
