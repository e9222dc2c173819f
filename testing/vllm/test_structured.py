"""--structured-outputs: JSON answers are constrained to JSON, even from a random model."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings
from pytest_structeval.tasks import Task


def test_json_tasks_are_valid_json(tiny_model: Path, fast_engine: dict, tasks: list[Task]) -> None:
    config = Settings.of(
        model=str(tiny_model), max_tokens=48, vllm_args=fast_engine, structured_outputs=True
    )
    backend = VllmBackend(config.engine, config.sampling, progress=False)
    try:
        results = backend.generate(tasks)
    finally:
        backend.close()
    meta = backend.meta()
    assert meta["engine_args"]["structured_outputs_config"] == {
        "backend": "xgrammar",
        "disable_any_whitespace": True,
    }
    assert meta["structured_outputs"]["JSON"] == {"json_object": True}
    for task in tasks:
        text = results[task.task_id].text
        if task.output_type == "JSON" and results[task.task_id].finish_reason == "stop":
            json.loads(text)
        if task.output_type == "CSV":
            assert '"' not in text.replace('""', "") or text.count('"') % 2 == 0
    assert any(t.output_type == "JSON" for t in tasks)
