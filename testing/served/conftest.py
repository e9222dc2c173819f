"""Fixtures for the served-engine tests: the tiny model, the bundled tasks, and a local stub
server for fault injection (``fault_server.FaultServer``; the real server is ``VllmServer``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from fault_server import FaultServer

from pytest_structeval.backends.platform import prepare_environment

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
prepare_environment()


@pytest.fixture
def stub() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server
