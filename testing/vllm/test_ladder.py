"""The out-of-memory fallback ladder, with real engine starts on the tiny model.

A KV cache of 2000 bytes cannot hold one block, which fails engine start the way a too-small
GPU does; VLLM_CPU_KVCACHE_SPACE would override kv_cache_memory_bytes, so it is unset here.
The engine core runs in another process, so the first test also shows that the root cause is
read from the engine's log: the parent only sees "Engine core initialization failed"."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pytest_structeval.backends.engine import EngineStartError, RungFailure, start_engine
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings

TOO_SMALL = {"kv_cache_memory_bytes": 2000}
FITS = {"kv_cache_memory_bytes": 64 * 1024 * 1024}


@pytest.fixture(autouse=True)
def _no_kv_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)


def test_first_rung_fails_second_generates(
    tiny_model: Path, fast_engine: dict, tasks: list
) -> None:
    config = Settings.of(model=str(tiny_model), max_tokens=8, vllm_args=fast_engine)
    backend = VllmBackend(config.engine, config.sampling, ladder=[TOO_SMALL, FITS], progress=False)
    try:
        results = backend.generate(tasks[:2])
    finally:
        backend.close()
    assert len(results) == 2 and backend.stats.engine_builds == 1
    meta = backend.meta()
    assert meta["engine_args"]["kv_cache_memory_bytes"] == FITS["kv_cache_memory_bytes"]
    assert [a["overrides"] for a in meta["engine_attempts"]] == [TOO_SMALL]
    assert "No available memory for the cache blocks" in meta["engine_attempts"][0]["cause"]


def test_all_rungs_fail_with_one_message(tiny_model: Path, fast_engine: dict) -> None:
    kwargs = {"model": str(tiny_model), "dtype": "float32", **fast_engine}
    with pytest.raises(EngineStartError) as info:
        with start_engine(kwargs, [TOO_SMALL]):
            pass
    assert "ran out of memory starting" in str(info.value)
    assert "rung 1 (kv_cache_memory_bytes=2000): " in str(info.value)
    assert "No available memory for the cache blocks" in str(info.value)
    assert len(info.value.failures) == 1


def test_failure_message_lists_every_rung() -> None:
    error = EngineStartError(
        "m",
        [
            RungFailure({}, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate"),
            RungFailure(
                {"max_model_len": 2048}, "ValueError: No available memory for the cache blocks"
            ),
        ],
    )
    lines = str(error).splitlines()
    assert lines[0] == "vLLM ran out of memory starting m on 2 rung(s):"
    assert (
        lines[1]
        == "  rung 1 (as configured): torch.OutOfMemoryError: CUDA out of memory. Tried to allocate"
    )
    assert (
        lines[2]
        == "  rung 2 (max_model_len=2048): ValueError: No available memory for the cache blocks"
    )


def test_a_failure_after_memory_rungs_names_the_last_cause() -> None:
    error = EngineStartError(
        "m",
        [
            RungFailure({}, "ValueError: No available memory for the cache blocks"),
            RungFailure({"max_model_len": 2048}, "ModuleNotFoundError: No module named 'x'"),
        ],
    )
    assert str(error).splitlines()[0] == (
        "vLLM could not start m (after 1 out-of-memory rung(s)): "
        "ModuleNotFoundError: No module named 'x'"
    )


def test_non_memory_error_stops_the_ladder(tmp_path: Path) -> None:
    attempts: list = []
    with pytest.raises(EngineStartError) as info:
        with start_engine(
            {"model": str(tmp_path / "missing"), "dtype": "float32"}, [{}, FITS], attempts=attempts
        ):
            pass
    assert len(attempts) == 1
    assert str(info.value).startswith(f"vLLM could not start {tmp_path / 'missing'}: ")


def test_a_module_missing_in_the_engine_process_is_one_attempt_with_its_cause(
    tiny_model: Path,
    fast_engine: dict,
    broken_engine_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in broken_engine_env.items():
        monkeypatch.setenv(name, value)
    config = Settings.of(model=str(tiny_model), max_tokens=8, vllm_args=fast_engine)
    backend = VllmBackend(
        config.engine, config.sampling, progress=False
    )  # the default ladder: four rungs
    started = time.perf_counter()
    with pytest.raises(EngineStartError) as info:
        backend.generate([])  # nothing to generate: no engine
        backend._start(on_phase=None)
    seconds = time.perf_counter() - started
    backend.close()
    assert len(info.value.failures) == 1, str(info.value)
    message = str(info.value)
    assert "ModuleNotFoundError: No module named 'vllm.v1.worker.cpu_worker'" in message
    assert "memory" not in message.lower()
    assert seconds < 600
