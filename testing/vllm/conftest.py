"""Shared fixtures for the vLLM backend tests: a tiny model built once per session.

Engines start in 20-30 s on 2 CPU cores, so tests that need one share it per module; the KV
cache is pinned to 1 GiB (vLLM's CPU default is most of the machine's memory)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from pytest_structeval.backends.platform import prepare_environment
from pytest_structeval.tasks import Task

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
prepare_environment()


@pytest.fixture(scope="session")
def fast_engine() -> dict[str, object]:
    """Eager mode: torch.compile adds ~50 s to each engine start on 2 cores and gains nothing
    for a tiny model."""
    return {"enforce_eager": True}


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


# Installed through PYTHONPATH, which the engine's spawned processes inherit: in them (and only
# in them: multiprocessing's spawn passes --multiprocessing-fork) one module cannot be imported,
# as flashinfer could not be inside vLLM 0.26's engine core on a GPU.
_BLOCK_IN_ENGINE = textwrap.dedent(
    """
    import importlib.abc, os, sys

    BLOCKED = os.environ.get("STRUCTEVAL_TEST_BLOCKED_MODULE")

    class _Blocked(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    if BLOCKED and "--multiprocessing-fork" in sys.argv:
        sys.meta_path.insert(0, _Blocked())
    """
)


BLOCKED_MODULE = "vllm.v1.worker.cpu_worker"


@pytest.fixture
def broken_engine_env(tmp_path: Path) -> dict[str, str]:
    """Environment variables under which vLLM's engine processes cannot import one module
    (the CPU worker), while the process that sets them is unaffected."""
    site = tmp_path / "blocked-site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCK_IN_ENGINE, encoding="utf-8")
    return {"PYTHONPATH": str(site), "STRUCTEVAL_TEST_BLOCKED_MODULE": BLOCKED_MODULE}
