"""Fixtures for the served-engine tests: the tiny model, the bundled tasks, and a local stub
server for fault injection (``fault_server.FaultServer``; the real server is ``VllmServer``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_server import FaultServer

from pytest_structeval.backends.platform import prepare_environment
from pytest_structeval.models.tiny import build_tiny_model

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
prepare_environment()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def stub() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server
