"""What an engine failure costs and says, without starting an engine: rungs that cannot fit the
free memory vLLM reported are not tried, and a pydantic validation error's headline is its
useful line. vLLM's own code writes the messages (its free-memory check, its config
validation), so a change of wording in vLLM fails these tests rather than the parsing silently.
A stub only injects the fault: an engine start that fails with vLLM's real message."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from pytest_structeval.backends import engine
from pytest_structeval.backends.engine import (
    EngineArgumentError,
    EngineStartError,
    default_ladder,
    failure_cause,
    reported_free_memory,
    start_engine,
    validate_engine_args,
)

GIB = 1024**3


def vllm_free_memory_error(free_gib: float, total_gib: float, fraction: float) -> str:
    """The message vLLM's own start-up check raises for this device and fraction."""
    utils = pytest.importorskip("vllm.v1.worker.utils")
    snapshot = SimpleNamespace(
        free_memory=int(free_gib * GIB), total_memory=int(total_gib * GIB), device_="cuda:0"
    )
    with pytest.raises(ValueError) as info:
        utils.request_memory(snapshot, SimpleNamespace(gpu_memory_utilization=fraction))
    return str(info.value)


def test_the_free_memory_message_is_parsed() -> None:
    message = vllm_free_memory_error(10.85, 79.19, 0.9)
    assert "less than desired GPU memory utilization (0.9," in message
    assert reported_free_memory(f"ValueError: {message}") == (10.85, 79.19)
    assert reported_free_memory("ValueError: No available memory for the cache blocks") is None


def fake_device(monkeypatch: pytest.MonkeyPatch, free_gib: float, total_gib: float) -> list:
    """Engine starts that fail exactly as vLLM's free-memory check does on a device with
    ``free_gib`` of ``total_gib`` free, and succeed otherwise; returns the fractions tried."""
    tried: list[float] = []

    def enter(self: engine.VllmEngine) -> object:
        fraction = float(self.requested.get("gpu_memory_utilization", 0.9))
        tried.append(fraction)
        if fraction * total_gib > free_gib:
            raise ValueError(vllm_free_memory_error(free_gib, total_gib, fraction))
        self.llm = None  # started: nothing to tear down
        return self.llm

    monkeypatch.setattr(engine.VllmEngine, "__enter__", enter)
    return tried


def test_rungs_that_cannot_fit_the_reported_free_memory_are_not_tried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tried = fake_device(monkeypatch, 10.85, 79.19)
    kwargs = {"model": "m", "max_model_len": 4096, "gpu_memory_utilization": 0.9}
    with caplog.at_level(logging.INFO), pytest.raises(EngineStartError) as info:
        with start_engine(kwargs, default_ladder(4096, 0.9)):
            pass
    assert tried == [0.9]  # 0.80, 0.95 and the half-context 0.90 cannot fit 10.85 GiB
    assert "trying the next rung" not in caplog.text
    lines = str(info.value).splitlines()
    assert lines[0] == "vLLM ran out of memory starting m on 1 rung(s):"
    assert "Free memory on device cuda:0 (10.85/79.19 GiB)" in lines[1]
    assert lines[-1].startswith(
        "Only 10.85 of 79.19 GiB were free (another process holds the rest): "
        "at most --gpu-memory-utilization=0.13 can start"
    )


def test_a_rung_that_fits_is_still_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    tried = fake_device(monkeypatch, 70.0, 79.19)
    kwargs = {"model": "m", "max_model_len": 4096, "gpu_memory_utilization": 0.9}
    with start_engine(kwargs, default_ladder(4096, 0.9)) as started:
        assert started.kwargs["gpu_memory_utilization"] == 0.8
    assert tried == [0.9, 0.8]


def test_an_unknown_quantization_method_is_rejected_up_front() -> None:
    with pytest.raises(EngineArgumentError) as info:
        validate_engine_args({"quantization": "nonsense"})
    assert str(info.value).startswith("--vllm-arg quantization='nonsense': vLLM ")
    assert "knows no quantization 'nonsense'; it takes one of " in str(info.value)
    assert "fp8" in str(info.value)
    validate_engine_args({"quantization": "fp8"})


def test_checking_engine_arguments_makes_no_warning() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validate_engine_args({"max_num_seqs": 8, "enforce_eager": True})


def test_a_validation_error_is_headlined_by_its_message(tiny_model) -> None:
    """vLLM's ModelConfig rejects an unknown quantization method with a pydantic error whose
    first line is only "1 validation error for ModelConfig"."""
    model = pytest.importorskip("vllm.config.model")
    with pytest.raises(Exception) as info:  # whatever vLLM raises
        model.ModelConfig(model=str(tiny_model), quantization="nonsense")
    assert str(info.value).startswith("1 validation error for ModelConfig")
    cause = failure_cause(info.value)
    assert cause.startswith("ValidationError: Unknown quantization method: nonsense. Must be one")
    assert cause.endswith("(ModelConfig)")
