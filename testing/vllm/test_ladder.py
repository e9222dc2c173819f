"""The out-of-memory fallback ladder, with real engine starts on the tiny model.

A KV cache of 2000 bytes cannot hold one block, which fails engine start the way a too-small
GPU does; VLLM_CPU_KVCACHE_SPACE would override kv_cache_memory_bytes, so it is unset here."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_structeval.backends.engine import EngineStartError, RungFailure, start_engine
from pytest_structeval.backends.vllm_offline import VllmBackend, VllmConfig

TOO_SMALL = {"kv_cache_memory_bytes": 2000}
FITS = {"kv_cache_memory_bytes": 64 * 1024 * 1024}


@pytest.fixture(autouse=True)
def _no_kv_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)


def test_first_rung_fails_second_generates(
    tiny_model: Path, fast_engine: dict, tasks: list
) -> None:
    config = VllmConfig(model=str(tiny_model), max_tokens=8, vllm_args=fast_engine)
    backend = VllmBackend(config, ladder=[TOO_SMALL, FITS], progress=False)
    try:
        results = backend.generate(tasks[:2])
    finally:
        backend.close()
    assert len(results) == 2 and backend.stats.engine_builds == 1
    meta = backend.meta()
    assert meta["engine_args"]["kv_cache_memory_bytes"] == FITS["kv_cache_memory_bytes"]
    assert [a["overrides"] for a in meta["engine_attempts"]] == [TOO_SMALL]
    assert meta["engine_attempts"][0]["cause"]


def test_all_rungs_fail_with_one_message(tiny_model: Path, fast_engine: dict) -> None:
    kwargs = {"model": str(tiny_model), "dtype": "float32", **fast_engine}
    with pytest.raises(EngineStartError) as info:
        with start_engine(kwargs, [TOO_SMALL]):
            pass
    assert "on any of 1 fallback rung(s)" in str(info.value)
    assert "rung 1 (kv_cache_memory_bytes=2000): " in str(info.value)
    assert len(info.value.failures) == 1


def test_failure_message_lists_every_rung() -> None:
    error = EngineStartError(
        "m",
        [
            RungFailure({}, "RuntimeError: Engine core initialization failed"),
            RungFailure(
                {"max_model_len": 2048}, "ValueError: No available memory for the cache blocks"
            ),
        ],
    )
    lines = str(error).splitlines()
    assert lines[1] == "  rung 1 (as configured): RuntimeError: Engine core initialization failed"
    assert (
        lines[2]
        == "  rung 2 (max_model_len=2048): ValueError: No available memory for the cache blocks"
    )


def test_non_memory_error_stops_the_ladder(tmp_path: Path) -> None:
    attempts: list = []
    with pytest.raises(Exception) as info:
        with start_engine(
            {"model": str(tmp_path / "missing"), "dtype": "float32"}, [{}, FITS], attempts=attempts
        ):
            pass
    assert not isinstance(info.value, EngineStartError)
    assert len(attempts) == 1
