"""The vLLM engine as a context manager, and the out-of-memory fallback ladder.

``vllm`` is imported inside the functions that build an engine: importing it costs seconds and
initialises the accelerator platform.
"""

from __future__ import annotations

import contextlib
import gc
import inspect
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .platform import library_versions

logger = logging.getLogger(__name__)


def accepted_engine_kwargs() -> set[str]:
    """Keyword arguments this vLLM's ``LLM`` takes: its explicit parameters plus the
    ``EngineArgs`` fields its ``**kwargs`` feed."""
    import dataclasses

    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    params = {
        name
        for name, p in inspect.signature(LLM.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    return params | {f.name for f in dataclasses.fields(EngineArgs)}


def filter_engine_kwargs(kwargs: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    accepted = accepted_engine_kwargs()
    kept = {k: v for k, v in kwargs.items() if k in accepted}
    return kept, sorted(set(kwargs) - accepted)


class VllmEngine:
    """``with VllmEngine(kwargs) as llm:`` builds ``vllm.LLM(**kwargs)`` and tears it down.

    Teardown follows vllm-notes §2.3: stop the engine core's child processes, drop the last
    reference, ``cleanup_dist_env_and_memory`` (undoes vLLM's ``gc.freeze`` and frees the
    accelerator cache), collect. Unknown keyword arguments are dropped with a warning, so the
    same settings work across vLLM versions; ``kwargs`` afterwards holds exactly what ``LLM``
    got."""

    def __init__(self, kwargs: Mapping[str, object]) -> None:
        self.requested = dict(kwargs)
        self.kwargs: dict[str, object] = dict(kwargs)
        self.dropped: list[str] = []
        self.llm: Any = None

    def __enter__(self) -> Any:
        from vllm import LLM  # lazy: see the module docstring

        self.kwargs, self.dropped = filter_engine_kwargs(self.requested)
        if self.dropped:
            warnings.warn(
                f"vLLM {library_versions()['vllm']} does not accept engine argument(s) "
                f"{', '.join(self.dropped)}; ignored",
                stacklevel=2,
            )
        try:
            self.llm = LLM(**self.kwargs)
        except BaseException:
            self._cleanup()
            raise
        return self.llm

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception as exc:  # already dead: nothing left to stop
            logger.debug("engine_core.shutdown failed: %s", exc)
        del llm
        self._cleanup()

    @staticmethod
    def _cleanup() -> None:
        try:
            from vllm.distributed import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        except Exception as exc:
            logger.debug("cleanup_dist_env_and_memory failed: %s", exc)
        gc.collect()


_MEMORY_ERROR = re.compile(
    r"out of memory|OutOfMemory|\bOOM\b|cache blocks|KV cache|max seq len|memory utilization|"
    r"Free memory|not enough memory|Engine core initialization failed",
    re.IGNORECASE,
)


def is_memory_error(exc: BaseException) -> bool:
    """Failures a smaller context or another memory fraction may fix.

    In vLLM's default multiprocessing mode an init failure reaches the parent only as
    "Engine core initialization failed" (the real cause is in the engine log above it), so that
    message counts too."""
    text = f"{type(exc).__name__}: {exc}"
    return isinstance(exc, MemoryError) or bool(_MEMORY_ERROR.search(text))


def default_ladder(
    max_model_len: int, gpu_memory_utilization: float | None
) -> list[dict[str, object]]:
    """Fallback rungs as overrides of the configured engine arguments, as the official
    notebook's: as configured; a lower memory fraction (another process holds memory, so the
    free-memory check fails); a higher one (the KV cache cannot hold one max-length sequence);
    then half the context."""
    rungs: list[dict[str, object]] = [{}]
    for fraction in (0.80, 0.95):
        if gpu_memory_utilization != fraction:
            rungs.append({"gpu_memory_utilization": fraction})
    if max_model_len >= 2048:
        rungs.append({"max_model_len": max_model_len // 2, "gpu_memory_utilization": 0.90})
    return rungs


@dataclass(frozen=True)
class RungFailure:
    overrides: dict[str, object]
    cause: str


class EngineStartError(RuntimeError):
    """Every rung of the fallback ladder failed; the message lists each rung and its cause."""

    def __init__(self, model: str, failures: Sequence[RungFailure]) -> None:
        self.failures = list(failures)
        lines = [f"vLLM could not start {model} on any of {len(failures)} fallback rung(s):"]
        for i, failure in enumerate(failures, 1):
            what = ", ".join(f"{k}={v}" for k, v in failure.overrides.items()) or "as configured"
            lines.append(f"  rung {i} ({what}): {failure.cause}")
        lines.append(
            "The engine log above has the root cause of each failure. Try a smaller "
            "--max-model-len, --gpu-memory-utilization, or free the device."
        )
        super().__init__("\n".join(lines))


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@contextlib.contextmanager
def start_engine(
    kwargs: Mapping[str, object],
    ladder: Sequence[Mapping[str, object]] | None = None,
    *,
    attempts: list[RungFailure] | None = None,
) -> Iterator[VllmEngine]:
    """Yield a started ``VllmEngine``, trying each rung (overrides of ``kwargs``) in turn.

    Each rung gets its own ``with VllmEngine``, so a failed one is torn down before the next
    starts. Only memory-looking failures move on to the next rung; anything else (a missing
    model, a bad argument) is raised at once. ``attempts`` receives the failed rungs."""
    ladder = list(ladder) if ladder is not None else [{}]
    failures = attempts if attempts is not None else []
    for rung in ladder:
        engine = VllmEngine({**kwargs, **rung})
        try:
            engine.__enter__()
        except Exception as exc:
            failures.append(RungFailure(dict(rung), _cause(exc)))
            if not is_memory_error(exc):
                raise
            logger.warning("engine start failed (%s); trying the next fallback rung", _cause(exc))
            continue
        with contextlib.closing(engine):
            yield engine
        return
    raise EngineStartError(str(kwargs.get("model")), failures)
