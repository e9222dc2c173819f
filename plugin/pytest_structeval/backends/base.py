"""Where generations come from: one interface, several backends.

``Backend.generate`` is the template method: it asks the generation cache first, hands only
the misses to the backend's one narrow hook (``_generate``), stores what comes back, and keeps
the bookkeeping that ends up in report.json's ``meta``.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..tasks import Task

if TYPE_CHECKING:
    from ..cache import GenerationCache

FinishReason = Literal["stop", "length", "unknown"]


@dataclass(frozen=True)
class Generation:
    """The model's answer to one task."""

    task_id: str
    text: str
    finish_reason: FinishReason = "unknown"
    from_cache: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BackendStats:
    """What a backend did in this process; summed over xdist workers for report.json."""

    engine_builds: int = 0
    generated: int = 0
    cache_hits: int = 0
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

    def __init__(self, *, cache: GenerationCache | None = None) -> None:
        self.cache = cache
        self.stats = BackendStats()

    def generate(
        self,
        tasks: Sequence[Task],
        *,
        on_phase: Callable[[str], None] | None = None,
    ) -> dict[str, Generation]:
        """Return a generation for every task, generating only what the cache lacks."""
        identity = self.cache_identity()
        use_cache = self.cache is not None and identity is not None
        results: dict[str, Generation] = {}
        misses: list[Task] = []
        for task in tasks:
            hit = self.cache.get(identity, task) if use_cache else None  # type: ignore[union-attr]
            if hit is not None:
                results[task.task_id] = hit
                self.stats.cache_hits += 1
            else:
                misses.append(task)
        if misses:
            started = time.perf_counter()
            by_id = {task.task_id: task for task in misses}
            store = (lambda g: self.cache.put(identity, by_id[g.task_id], g)) if use_cache else None  # type: ignore[union-attr]
            for generation in self._generate(misses, store=store, on_phase=on_phase):
                results[generation.task_id] = generation
            self.stats.generated += len(misses)
            self.stats.add_time("generate_total", time.perf_counter() - started)
        return results

    @abstractmethod
    def _generate(
        self,
        tasks: Sequence[Task],
        *,
        store: Callable[[Generation], None] | None,
        on_phase: Callable[[str], None] | None,
    ) -> Iterable[Generation]:
        """Generate for ``tasks`` (all cache misses). Call ``store`` as each one completes so
        that a run killed mid-way keeps what finished."""

    def cache_identity(self) -> dict[str, Any] | None:
        """Everything except the prompt that determines the output; None disables caching."""
        return None

    def meta(self) -> dict[str, Any]:
        """Provenance for report.json's ``meta`` (backend, model, engine and sampling args)."""
        return {"backend": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook: backends without resources keep it
        """Release engines, servers and files. Safe to call twice."""
