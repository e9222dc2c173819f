"""Shared fixtures for the vLLM backend tests: a tiny model built once per session.

Engines start in 20-30 s on 2 CPU cores, so tests that need one share it per module; the KV
cache is pinned to 1 GiB (vLLM's CPU default is most of the machine's memory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_structeval.backends.platform import prepare_environment
from pytest_structeval.models.tiny import build_tiny_model
from pytest_structeval.tasks import Task

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
prepare_environment()


@pytest.fixture(scope="session")
def fast_engine() -> dict[str, object]:
    """Eager mode: torch.compile adds ~50 s to each engine start on 2 cores and gains nothing
    for a tiny model."""
    return {"enforce_eager": True}


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, built straight into a directory (not via builtin:tiny), so every engine
    test also checks that an arbitrary local model directory works as --model=/path."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tasks() -> list[Task]:
    fmts = ("JSON", "YAML", "TOML", "XML", "CSV", "JSON")
    return [
        Task(
            task_id=f"t{i}",
            task_name=f"Text to {fmt}",
            query=f"Please output {fmt} describing a book with a title, an author and {i + 2} tags.",
            output_type=fmt,  # type: ignore[arg-type]
        )
        for i, fmt in enumerate(fmts)
    ]
