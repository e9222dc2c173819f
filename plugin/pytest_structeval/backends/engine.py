"""The vLLM engine as a context manager, and the out-of-memory fallback ladder.

``vllm`` is imported inside the functions that need it: importing it costs seconds and
initialises the accelerator platform. Each sets the environment vLLM reads first
(``prepare_environment``), so that the Python API gets what a pytest run gets.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import difflib
import gc
import importlib
import inspect
import logging
import os
import re
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from .platform import library_versions, prepare_environment

logger = logging.getLogger(__name__)


def accepted_engine_kwargs() -> set[str]:
    """Keyword arguments this vLLM's ``LLM`` takes: its explicit parameters plus the
    ``EngineArgs`` fields its ``**kwargs`` feed."""

    prepare_environment()
    from vllm import LLM  # lazy: see the module docstring
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


class EngineArgumentError(ValueError):
    """An engine argument this vLLM does not take, or a value its own types reject."""


def validate_engine_args(args: Mapping[str, object]) -> None:
    """Check the user's engine arguments (``--vllm-arg``) before any engine starts.

    An unknown name is an error (a typo would otherwise be dropped or reach vLLM's dataclass
    as a ``TypeError``); a value is checked against the type and constraints of the vLLM
    config field of that name (its pydantic ``FieldInfo``: ``max_num_seqs >= 1``, a dtype from
    its ``Literal``, ...). Where several configs have a field of that name, a value any of them
    accepts passes: this never rejects what vLLM might take. If vLLM cannot be imported at
    all, nothing is checked here: the preflight says why."""
    try:
        import pydantic  # vLLM's dependency: present only where vLLM is

        prepare_environment()
        import vllm.config as vllm_config  # lazy: see the module docstring

        accepted = accepted_engine_kwargs()
    except Exception as exc:  # a broken vLLM install: the preflight reports it
        logger.debug("engine arguments not validated: %s", exc)
        return
    for key, value in args.items():
        if key not in accepted:
            close = difflib.get_close_matches(key, sorted(accepted), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            version = library_versions()["vllm"]
            raise EngineArgumentError(
                f"--vllm-arg {key}: vLLM {version} has no engine argument {key!r}{hint}"
            )
        errors = []
        for field in _config_fields(vllm_config).get(key, []):
            try:
                # The field's type and its constraints (``ge=1``, ...), not the FieldInfo
                # itself: its dataclass-only attributes (init, kw_only) mean nothing to a
                # TypeAdapter, which warns about each.
                adapter = pydantic.TypeAdapter(
                    Annotated[(field.annotation, *field.metadata)]
                    if field.metadata
                    else field.annotation,
                    config=pydantic.ConfigDict(arbitrary_types_allowed=True),
                )
                adapter.validate_python(value)
            except pydantic.ValidationError as exc:
                errors.append(exc.errors()[0]["msg"])
                continue
            except Exception:  # a type pydantic cannot check: leave it to vLLM
                pass
            errors = []
            break
        if errors:
            raise EngineArgumentError(f"--vllm-arg {key}={value!r}: {errors[0]}")
        choices = _open_choices(key)
        if choices is not None and value is not None and value not in choices:
            raise EngineArgumentError(
                f"--vllm-arg {key}={value!r}: vLLM {library_versions()['vllm']} knows no "
                f"{key} {value!r}; it takes one of {', '.join(map(str, choices))}"
            )


def _open_choices(key: str) -> list[object] | None:
    """The values vLLM accepts for an argument whose declared type is wider than what it
    accepts (``quantization: QuantizationMethods | str | None``: any string passes the type
    and fails only inside the engine, after seconds of start-up), from vLLM's own registry."""
    if key == "quantization":
        from vllm.model_executor.layers.quantization import QUANTIZATION_METHODS  # lazy: vLLM

        return list(QUANTIZATION_METHODS)
    return None


def _config_fields(module: Any) -> dict[str, list[Any]]:
    """Field name -> the pydantic FieldInfo of every vLLM config dataclass that has it."""
    fields: dict[str, list[Any]] = {}
    for name in dir(module):
        cls = getattr(module, name)
        declared = getattr(cls, "__pydantic_fields__", None) if isinstance(cls, type) else None
        if isinstance(declared, dict):
            for field_name, info in declared.items():
                fields.setdefault(field_name, []).append(info)
    return fields


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
        self.log: EngineLog | None = None
        # Seconds the engine core gets to stop before it is killed (None: vLLM's default, 5).
        self.shutdown_grace: float | None = None

    def __enter__(self) -> Any:
        prepare_environment()
        from vllm import LLM  # lazy: see the module docstring

        self.kwargs, self.dropped = filter_engine_kwargs(self.requested)
        if self.dropped:
            warnings.warn(
                f"vLLM {library_versions()['vllm']} does not accept engine argument(s) "
                f"{', '.join(self.dropped)}; ignored",
                stacklevel=2,
            )
        self.log = EngineLog()
        try:
            with self.log:
                self.llm = LLM(**self.kwargs)
        except BaseException:
            self._cleanup()
            raise
        return self.llm

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the engine's processes and free what it held. vLLM's ``[shutdown]`` lines
        (a dozen INFO lines from each process, nothing a user acts on) are not shown: the
        engine's own output stops reaching the terminal, and this process's vLLM logger says
        only warnings meanwhile. Their tail stays in ``log``."""
        llm, self.llm = self.llm, None
        if llm is None:
            return
        if self.log is not None:
            self.log.mute()
        vllm_logger = logging.getLogger("vllm")
        level = vllm_logger.level
        vllm_logger.setLevel(max(level, logging.WARNING))
        try:
            llm.llm_engine.engine_core.shutdown(timeout=self.shutdown_grace)
        except Exception as exc:  # already dead: nothing left to stop
            logger.debug("engine_core.shutdown failed: %s", exc)
        finally:
            vllm_logger.setLevel(level)
        del llm
        self._cleanup()

    @staticmethod
    def _cleanup() -> None:
        try:
            from vllm.distributed import cleanup_dist_env_and_memory  # lazy: vLLM

            cleanup_dist_env_and_memory()
        except Exception as exc:
            logger.debug("cleanup_dist_env_and_memory failed: %s", exc)
        gc.collect()


class EngineLog:
    """Keeps the tail of what vLLM's processes print while an engine starts.

    vLLM runs the engine core (and its workers) in child processes that inherit file
    descriptors 1 and 2 (vLLM logs to stdout, tracebacks go to stderr); an exception there
    reaches the parent only as "Engine core initialization failed. See root cause above", and
    the root cause is only in that output. Inside the ``with`` block both descriptors are pipes
    whose readers copy everything to where it was going (the user still sees the log as it
    happens) and keep the last ``limit`` bytes. The children keep the pipes for their
    lifetime, so the readers run until the last of them closes its end."""

    def __init__(self, limit: int = 256 * 1024) -> None:
        self.limit = limit
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._lock = threading.Lock()
        self._saved: dict[int, int] = {}
        self._readers: list[threading.Thread] = []
        self._last_read = time.monotonic()
        self._forward = True  # copy to the terminal too; off once muted

    def __enter__(self) -> EngineLog:
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
            stream.flush()
            self._saved[fd] = os.dup(fd)
            read_end, write_end = os.pipe()
            forward_to = os.dup(self._saved[fd])  # the reader's own copy: it outlives the block
            reader = threading.Thread(
                target=self._pump, args=(read_end, forward_to), name="vllm-log", daemon=True
            )
            reader.start()
            self._readers.append(reader)
            os.dup2(write_end, fd)
            os.close(write_end)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for fd, saved in self._saved.items():
            os.dup2(saved, fd)
            os.close(saved)
        self._saved.clear()

    def mute(self) -> None:
        """From now on keep the output without copying it to where it was going."""
        self._forward = False

    def _pump(self, read_end: int, forward_to: int) -> None:
        try:
            while chunk := os.read(read_end, 65536):
                if self._forward:
                    with contextlib.suppress(OSError):
                        os.write(forward_to, chunk)
                with self._lock:
                    self._last_read = time.monotonic()
                    self._chunks.append(chunk)
                    self._size += len(chunk)
                    while self._size > self.limit and len(self._chunks) > 1:
                        self._size -= len(self._chunks.popleft())
        finally:
            os.close(read_end)
            os.close(forward_to)

    def text(self, *, settle: float = 1.0, timeout: float = 10.0) -> str:
        """What was printed so far, once the output has been quiet for ``settle`` seconds (or
        its writers are gone): a failing engine's processes print their tracebacks as they
        die, after the parent has already seen the failure."""
        deadline = time.monotonic() + timeout
        while any(reader.is_alive() for reader in self._readers):
            with self._lock:
                quiet = time.monotonic() - self._last_read
            if quiet >= settle or time.monotonic() >= deadline:
                break
            time.sleep(min(settle - quiet, 0.1))
        with self._lock:
            return b"".join(self._chunks).decode("utf-8", errors="replace")


# vLLM prefixes its child processes' lines: "(EngineCore_DP0 pid=12) ERROR 12-01 08:51:01
# [core.py:1510] ...". What follows may be the exception line of a traceback.
_LOG_PREFIX = re.compile(r"^(?:\([\w.-]+ pid=\d+\)\s*)?(?:[A-Z]+ \d\d-\d\d [\d:.]+ \[[^\]]*\]\s*)?")
_EXCEPTION_LINE = re.compile(
    r"^(?:[A-Za-z_]\w*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt)(?::\s.*)?$"
)
# The wrappers vLLM raises around a failure in another process: never the root cause.
_WRAPPERS = (
    "Engine core initialization failed",
    "initialization failed due to an exception in a background process",
    "See stack trace for root cause",
    "See root cause above",
)


_VALIDATION_ERROR = re.compile(r"\d+ validation errors? for (\w+)")
# A pydantic error entry's message line: "  Value error, Unknown quantization method: ...
# [type=value_error, input_value=..., input_type=...]".
_VALIDATION_MESSAGE = re.compile(r"^\s*(?:Value error, |Assertion failed, )?(\S.*?)\s*\[type=")


def validation_message(headline: str, following: Sequence[str]) -> str | None:
    """For a pydantic ``ValidationError`` ("1 validation error for ModelConfig"), the useful
    part: its first entry's message ("Unknown quantization method: ..."), with the config
    named; None when ``headline`` is not one."""
    match = _VALIDATION_ERROR.search(headline)
    if match is None:
        return None
    for raw in following[:20]:
        found = _VALIDATION_MESSAGE.match(_LOG_PREFIX.sub("", raw.rstrip()))
        if found:
            return f"{found[1]} ({match[1]})"
    return None


def root_cause(log: str) -> str | None:
    """The last exception line in an engine log that is not one of vLLM's wrappers; for a
    pydantic validation error, its message line."""
    found = None
    lines = log.splitlines()
    for i, raw in enumerate(lines):
        line = _LOG_PREFIX.sub("", raw.strip())
        if _EXCEPTION_LINE.match(line) and not any(wrapper in line for wrapper in _WRAPPERS):
            message = validation_message(line, lines[i + 1 :])
            found = f"{line.split(':', 1)[0]}: {message}" if message else line
    return found


def failure_cause(exc: BaseException, log: str = "") -> str:
    """What made an engine start fail: the exception itself, or, when it is vLLM's wrapper for
    a failure in the engine core's process, the root cause from the engine's log. A pydantic
    validation error gives its message, not its "1 validation error for ModelConfig"."""
    text = str(exc).strip().splitlines()
    message = validation_message(text[0], text[1:]) if text else None
    own = f"{type(exc).__name__}: {message or (text[0] if text else '')}".rstrip(": ")
    if any(wrapper in own for wrapper in _WRAPPERS):
        return root_cause(log) or own
    return own


# Real evidence of running out of memory, as vLLM and torch word it.
_MEMORY_ERROR = re.compile(
    r"out of memory|OutOfMemoryError|No available memory for the cache blocks|"
    r"max seq len|less than desired GPU memory utilization|Free memory on device|"
    r"not enough (?:KV cache|memory)|Cannot allocate memory",
    re.IGNORECASE,
)


def is_memory_error(cause: str) -> bool:
    """Failures that a smaller context or another memory fraction may fix, judged on the root
    cause (``failure_cause``): retrying anything else only repeats the same failure."""
    return bool(_MEMORY_ERROR.search(cause))


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
    """The engine did not start: one failure that is not about memory, or every rung of the
    fallback ladder out of memory. The message gives the root cause of each attempt."""

    def __init__(
        self,
        model: str,
        failures: Sequence[RungFailure],
        *,
        free_total: tuple[float, float] | None = None,
    ) -> None:
        self.failures = list(failures)
        last = self.failures[-1]
        if is_memory_error(last.cause):
            lines = [f"vLLM ran out of memory starting {model} on {len(failures)} rung(s):"]
            for i, failure in enumerate(failures, 1):
                what = ", ".join(f"{k}={v}" for k, v in failure.overrides.items())
                lines.append(f"  rung {i} ({what or 'as configured'}): {failure.cause}")
            if free_total is not None:
                free, total = free_total
                lines.append(
                    f"Only {free:g} of {total:g} GiB were free (another process holds the rest):"
                    f" at most --gpu-memory-utilization={int(free / total * 100) / 100:g} can "
                    "start; free the device or pass a fraction that fits."
                )
            else:
                lines.append(
                    "Try a smaller --max-model-len or --gpu-memory-utilization, or free the device."
                )
        else:
            after = (
                f" (after {len(failures) - 1} out-of-memory rung(s))" if len(failures) > 1 else ""
            )
            lines = [
                f"vLLM could not start {model}{after}: {last.cause}",
                "The engine's log above has the whole traceback.",
            ]
        super().__init__("\n".join(lines))


# vLLM's free-memory check at engine start (vllm/v1/worker/utils.py), for example "Free memory
# on device cuda:0 (10.85/79.19 GiB) on startup is less than desired GPU memory utilization
# (0.9, 71.27 GiB)": what was free and the device's total, in GiB.
_FREE_MEMORY = re.compile(r"Free memory on device[^(]*\(([\d.]+)/([\d.]+) GiB\) on startup")


def reported_free_memory(cause: str) -> tuple[float, float] | None:
    """(free, total) GiB from vLLM's free-memory error, or None when the cause is another."""
    match = _FREE_MEMORY.search(cause)
    return (float(match[1]), float(match[2])) if match else None


def rung_fits(
    rung: Mapping[str, object], kwargs: Mapping[str, object], free_total: tuple[float, float]
) -> bool:
    """Whether a rung's memory fraction can pass vLLM's free-memory check, given the free and
    total memory an earlier rung's own error reported (vLLM asks fraction x total up front)."""
    fraction = rung.get("gpu_memory_utilization", kwargs.get("gpu_memory_utilization", 0.9))
    if not isinstance(fraction, int | float):
        return True
    free, total = free_total
    return float(fraction) * total <= free


@contextlib.contextmanager
def start_engine(
    kwargs: Mapping[str, object],
    ladder: Sequence[Mapping[str, object]] | None = None,
    *,
    attempts: list[RungFailure] | None = None,
) -> Iterator[VllmEngine]:
    """Yield a started ``VllmEngine``, trying each rung (overrides of ``kwargs``) in turn.

    Each rung gets its own ``with VllmEngine``, so a failed one is torn down before the next
    starts. Only a root cause that shows the device ran out of memory moves on to the next
    rung; anything else (a missing module, a bad argument) stops at once. When vLLM reported
    the free and total memory, rungs whose memory fraction cannot fit in it are not tried: each
    costs an engine start that fails the same check. Either way a failure is an
    ``EngineStartError`` naming the root cause. ``attempts`` receives the failed rungs."""
    pending = [dict(rung) for rung in (ladder if ladder is not None else [{}])]
    failures = attempts if attempts is not None else []
    free_total: tuple[float, float] | None = None
    while pending:
        rung = pending.pop(0)
        engine = VllmEngine({**kwargs, **rung})
        try:
            engine.__enter__()
        except Exception as exc:
            cause = failure_cause(exc, engine.log.text() if engine.log else "")
            failures.append(RungFailure(dict(rung), cause))
            if not is_memory_error(cause):
                raise EngineStartError(str(kwargs.get("model")), failures) from exc
            free_total = reported_free_memory(cause) or free_total
            if free_total is not None:
                skipped = [r for r in pending if not rung_fits(r, kwargs, free_total)]
                pending = [r for r in pending if rung_fits(r, kwargs, free_total)]
                for r in skipped:
                    logger.info("rung %s skipped: it cannot fit in %s/%s GiB free", r, *free_total)
            if pending:
                logger.warning("engine start ran out of memory (%s); trying the next rung", cause)
            continue
        with contextlib.closing(engine):
            yield engine
        return
    raise EngineStartError(str(kwargs.get("model")), failures, free_total=free_total)


# ``import vllm`` alone is cheap: vLLM's package loads ``LLM``, its configs and its engine
# arguments lazily, on first use. These are what the argument check and the engine start use.
ENGINE_MODULES = (
    "vllm",
    "vllm.config",
    "vllm.engine.arg_utils",
    "vllm.entrypoints.llm",  # LLM, and with it the engine client and core
    "vllm.sampling_params",
    "vllm.model_executor.layers.quantization",
)


def import_engine_modules() -> None:
    """Import ``ENGINE_MODULES``, to warm ``sys.modules``: the plugin runs this in a background
    thread beside the preflight, which keeps the import (5-7 s of the main thread on a GPU
    machine, measured with py-spy) behind it. An import that fails is left to the preflight
    (vllm-importable) to explain."""
    prepare_environment()
    for name in ENGINE_MODULES:
        try:
            importlib.import_module(name)
        except BaseException:  # the preflight says why
            if name == "vllm":
                return
