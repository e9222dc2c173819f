"""Fixtures for the project's own tests; the helpers they use are in support.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import SHARED_DATA, XDIST_WORKER_VARS, Suite, build_lora_adapter

from pytest_structeval.files import CACHE_ENV

# -- pytest-xdist ---------------------------------------------------------------------------
# .ci/run uses ``--dist loadfile``: every test file stays whole on one worker, so a module-scoped
# fixture (an engine, a server, a ``pip wheel`` build in the source tree) starts once. Engines
# of two files may run at the same time, one per worker; the tests allow for that (their
# timeouts are for two shared cores).


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real competition files); a user's clone has none, so skip there."""
    if not (SHARED_DATA / "public_150.json").exists():
        pytest.skip("../shared/data is not present in this checkout")
    return SHARED_DATA


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Suite:
    return Suite(pytester)


@pytest.fixture(scope="session", autouse=True)
def _a_cache_of_our_own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The runs these tests start (pytester, subprocesses) build models and cache generations
    in a directory of this test session, never in the user's ~/.cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(tmp_path_factory.mktemp("structeval-cache")))
        yield


@pytest.fixture(autouse=True)
def _inner_runs_are_not_xdist_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    """When this suite itself runs under ``-n``, the variables xdist sets for its workers would
    make the runs that pytester starts (syrupy and our plugin read them) behave as workers."""
    for name in XDIST_WORKER_VARS:
        monkeypatch.delenv(name, raising=False)


# -- engines --------------------------------------------------------------------------------

# vLLM's CPU default KV cache is most of the machine's memory; 1 GiB is plenty for the tests.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def own_cores(worker: str | None, workers: int, cores: list[int]) -> str | None:
    """The cores for the OpenMP threads of the engines an xdist worker starts: its share of the
    machine's. vLLM's automatic binding picks the same core for every engine on the machine
    (on 2 cores: core 1, keeping the other for the rest), so two workers' engines would share
    one core: measured on this project's 2-core machine, two tiny-model runs at once took 43-64
    s each with the automatic binding and 31-41 s with one core each. None: no xdist, too few
    cores, or the user set ``VLLM_CPU_OMP_THREADS_BIND``."""
    if worker is None or workers < 2 or len(cores) < workers:
        return None
    index = int(worker.removeprefix("gw"))
    share = len(cores) // workers
    mine = cores[index * share : (index + 1) * share]
    return ",".join(str(core) for core in mine)


if "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
    _cores = own_cores(
        os.environ.get("PYTEST_XDIST_WORKER"),
        int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")),
        sorted(os.sched_getaffinity(0)),
    )
    if _cores is not None:
        os.environ["VLLM_CPU_OMP_THREADS_BIND"] = _cores
        # torch's own work in the worker (training an adapter, building a model) as many
        # threads as the worker has cores: two threads on two cores, one of them busy with the
        # other worker's engine, wait on each other at every parallel region (4 LoRA steps on
        # SmolLM2 took 29.5 s that way, 10.7 s with one thread, 5.8 s with both cores idle).
        os.environ.setdefault("OMP_NUM_THREADS", str(len(_cores.split(","))))


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
