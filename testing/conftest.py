"""Fixtures for the project's own tests; the helpers they use are in support.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import SHARED_DATA, XDIST_WORKER_VARS, Suite, build_lora_adapter

from pytest_structeval.files import CACHE_ENV

# -- pytest-xdist ---------------------------------------------------------------------------

TESTING = Path(__file__).resolve().parent
# The tests that start a vLLM engine or server. On 2 CPU cores an engine takes both (its OpenMP
# threads spin), so two at once are slower than one after the other, and each holds its KV cache
# (2 GiB in CI) besides the model: they share one worker.
ENGINE_TESTS = (
    "vllm/", "served/", "models/", "reward/test_grpo.py", "plugin/test_interrupt.py"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Groups for ``--dist loadgroup`` (what .ci/run uses): every engine test in one group, every
    other file a group of its own, as ``--dist loadfile`` would make it. A module-scoped fixture
    then runs once (xdist would build it on each worker that gets a test of the module: two
    engines, or two ``pip wheel`` builds in the same source tree), and no two engines overlap.
    Without ``-n`` the marks change nothing."""
    for item in items:
        if not item.path.is_relative_to(TESTING):
            continue
        path = item.path.relative_to(TESTING).as_posix()
        group = "engine" if path.startswith(ENGINE_TESTS) else path
        item.add_marker(pytest.mark.xdist_group(group))


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
