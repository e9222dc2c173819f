"""Where generations come from: one interface, several backends.

``Backend.generate`` is the template method: it asks the generation cache first, hands only
the misses to the backend's one narrow hook (``_generate``), stores what comes back, and keeps
the bookkeeping that ends up in report.json's ``meta``.

A task can fail on its own (a served request that still fails after its retries): the hook then
yields a ``TaskFailure`` for it instead of a ``Generation``. ``generate`` keeps those in
``Backend.failures`` and leaves them out of its result, so every other task still scores and the
caller reports each failed task as an error with its cause. Failures are never cached: a re-run
asks again.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from ..tasks import Task

FinishReason = Literal["stop", "length", "unknown"]


@dataclass(frozen=True)
class Generation:
    """The model's answer to one task."""

    task_id: str
    text: str
    finish_reason: FinishReason = "unknown"
    from_cache: bool = False
    # Tokens of the prompt the engine prefilled (chat template applied); None when unknown.
    prompt_tokens: int | None = None


@dataclass(frozen=True)
class TaskFailure:
    """A task that got no generation: ``cause`` says why (e.g. ``HTTP 500: ...``, ``no answer
    within 600 s``), ``attempts`` how many requests were sent for it."""

    task_id: str
    cause: str
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def message(self) -> str:
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        return f"no generation for task {self.task_id} after {tries}: {self.cause}"


class GenerationStore(Protocol):
    """Where ``Backend.generate`` keeps generations (``backends.cache.GenerationCache``; the
    cache imports this module, not the other way round)."""

    def get(
        self, identity: dict[str, Any], task: Task, *, ignore_refresh: bool = False
    ) -> Generation | None: ...

    def put(self, identity: dict[str, Any], task: Task, generation: Generation) -> object: ...


@dataclass
class BackendStats:
    """What a backend did in this process; summed over xdist workers for report.json."""

    engine_builds: int = 0
    generated: int = 0
    cache_hits: int = 0
    failed: int = 0  # tasks that ended as a TaskFailure
    retries: int = 0  # requests sent again after a transient failure (served backends)
    servers_started: int = 0  # vLLM server processes this backend started (--serve)
    timings: dict[str, float] = field(default_factory=dict)

    def add_time(self, phase: str, seconds: float) -> None:
        self.timings[phase] = self.timings.get(phase, 0.0) + seconds


class Backend(ABC):
    """Produces one ``Generation`` per task.

    Subclasses implement ``_generate`` (the misses, in one batch) and may override
    ``cache_identity`` (everything besides the prompt that determines the output) and ``meta``.
    A backend whose ``cache_identity`` is None is never cached (replay: nothing to save).
    """

    name: ClassVar[str]

    def __init__(self, *, cache: GenerationStore | None = None) -> None:
        self.cache = cache
        self.stats = BackendStats()
        self.failures: dict[str, TaskFailure] = {}

    def lookup(
        self, tasks: Sequence[Task], *, read_only: bool = False
    ) -> tuple[dict[str, Generation], list[Task]]:
        """The cached generations of ``tasks`` and the tasks that would have to be generated.

        Starts nothing: the identity is computed from files and package metadata. With
        ``read_only`` the cache is read even under ``--refresh`` (another process of this run
        has just refreshed it)."""
        identity = self.cache_identity()
        if self.cache is None or identity is None:
            return {}, list(tasks)
        hits: dict[str, Generation] = {}
        misses: list[Task] = []
        for task in tasks:
            hit = self.cache.get(identity, task, ignore_refresh=read_only)
            if hit is not None:
                hits[task.task_id] = hit
            else:
                misses.append(task)
        return hits, misses

    def generate(
        self,
        tasks: Sequence[Task],
        *,
        on_phase: Callable[[str], None] | None = None,
        read_only: bool = False,
    ) -> dict[str, Generation]:
        """Return a generation for every task, generating only what the cache lacks; a task
        whose generation failed is missing from the result and present in ``failures``."""
        results, misses = self.lookup(tasks, read_only=read_only)
        self.stats.cache_hits += len(results)
        for task_id in results:
            self.failures.pop(task_id, None)
        if misses:
            started = time.perf_counter()
            identity = self.cache_identity()
            cache = self.cache
            by_id = {task.task_id: task for task in misses}
            store = (
                (lambda g: cache.put(identity, by_id[g.task_id], g))
                if cache is not None and identity is not None
                else None
            )
            for outcome in self._generate(misses, store=store, on_phase=on_phase):
                if isinstance(outcome, TaskFailure):
                    self.failures[outcome.task_id] = outcome
                    self.stats.failed += 1
                else:
                    results[outcome.task_id] = outcome
                    self.failures.pop(outcome.task_id, None)
                    self.stats.generated += 1
            self.stats.add_time("generate_total", time.perf_counter() - started)
        return {task.task_id: results[task.task_id] for task in tasks if task.task_id in results}

    @abstractmethod
    def _generate(
        self,
        tasks: Sequence[Task],
        *,
        store: Callable[[Generation], None] | None,
        on_phase: Callable[[str], None] | None,
    ) -> Iterable[Generation | TaskFailure]:
        """Generate for ``tasks`` (all cache misses): one ``Generation`` or ``TaskFailure`` per
        task. Call ``store`` as each generation completes so that a run killed mid-way keeps
        what finished."""

    def cache_identity(self) -> dict[str, Any] | None:
        """Everything except the prompt that determines the output; None disables caching."""
        return None

    def meta(self) -> dict[str, Any]:
        """Provenance for report.json's ``meta`` (backend, model, engine and sampling args)."""
        return {"backend": self.name}

    def close(self, *, grace: float | None = None) -> None:  # noqa: B027 - optional hook
        """Release engines, servers and files. Safe to call twice. ``grace``: the seconds an
        engine's processes get to stop before they are killed (None: the engine's default;
        after Ctrl-C they are already stopping, and the user waits)."""
