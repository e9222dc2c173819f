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
        if self.attempts == 0:  # never sent (its server had already exited)
            return f"no generation for task {self.task_id}: {self.cause}"
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
        return generate_runs([(self, tasks)], on_phase=on_phase, read_only=read_only)[0]

    @property
    def lead(self) -> Backend:
        """The backend that generates this one's misses, in one call with those of every other
        backend that has the same lead (a sweep's adapters on one engine); itself by default."""
        return self

    def _generate_requests(
        self,
        requests: Sequence[tuple[Backend, Task]],
        *,
        stores: Sequence[Callable[[Generation], None] | None],
        on_phase: Callable[[str], None] | None,
    ) -> list[Generation | TaskFailure | None]:
        """The lead's hook for several backends: one outcome per ``(backend, task)`` request,
        in order; ``stores[i]`` keeps request ``i``'s generation. By default the lead serves
        only itself, through ``_generate``."""
        if any(backend is not self for backend, _ in requests):
            raise ValueError(f"{type(self).__name__} generates for itself only")
        index = {task.task_id: i for i, (_, task) in enumerate(requests)}

        def store(generation: Generation) -> None:
            keep = stores[index[generation.task_id]]
            if keep is not None:
                keep(generation)

        outcomes = {
            outcome.task_id: outcome
            for outcome in self._generate(
                [task for _, task in requests],
                store=store if any(s is not None for s in stores) else None,
                on_phase=on_phase,
            )
        }
        return [outcomes.get(task.task_id) for _, task in requests]

    def _store_for(self, task: Task) -> Callable[[Generation], None] | None:
        identity = self.cache_identity()
        cache = self.cache
        if cache is None or identity is None:
            return None
        return lambda generation: cache.put(identity, task, generation)

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


def generate_runs(
    work: Sequence[tuple[Backend, Sequence[Task]]],
    *,
    on_phase: Callable[[str], None] | None = None,
    read_only: bool = False,
    release: bool = False,
) -> list[dict[str, Generation]]:
    """Each backend's generations of its tasks (one dict per backend, in order), each backend
    keeping its own cache identity, counters and failures. The misses of backends that share a
    lead go to that lead in one call (one batch); leads take their turns in order, and with
    ``release`` each lead is closed (its engine's memory freed) before the next one starts."""
    backends = [backend for backend, _ in work]
    results: list[dict[str, Generation]] = []
    misses: list[list[Task]] = []
    for backend, tasks in work:
        hits, missing = backend.lookup(tasks, read_only=read_only)
        backend.stats.cache_hits += len(hits)
        for task_id in hits:
            backend.failures.pop(task_id, None)
        results.append(hits)
        misses.append(missing)
    groups: dict[int, list[int]] = {}
    for i, backend in enumerate(backends):
        groups.setdefault(id(backend.lead), []).append(i)
    for indices in groups.values():
        lead = backends[indices[0]].lead
        requests = [(i, backends[i], task) for i in indices for task in misses[i]]
        if requests:
            started = time.perf_counter()
            outcomes = lead._generate_requests(
                [(backend, task) for _, backend, task in requests],
                stores=[backend._store_for(task) for _, backend, task in requests],
                on_phase=on_phase,
            )
            for (i, backend, _), outcome in zip(requests, outcomes, strict=True):
                if outcome is None:
                    continue
                if isinstance(outcome, TaskFailure):
                    backend.failures[outcome.task_id] = outcome
                    backend.stats.failed += 1
                else:
                    results[i][outcome.task_id] = outcome
                    backend.failures.pop(outcome.task_id, None)
                    backend.stats.generated += 1
            lead.stats.add_time("generate_total", time.perf_counter() - started)
        if release and len(groups) > 1:
            lead.close()
            if on_phase and requests:
                on_phase(f"engine released ({len(requests)} generations done)")
    return [
        {task.task_id: found[task.task_id] for task in tasks if task.task_id in found}
        for found, (_, tasks) in zip(results, work, strict=True)
    ]
