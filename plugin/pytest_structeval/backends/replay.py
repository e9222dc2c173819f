"""Replay: score an existing inference.json; no engine, no cache."""

from __future__ import annotations

from typing import Any

from .base import Backend, Generation


class ReplayBackend(Backend):
    """Scores an existing inference.json: no engine, no cache."""

    name = "replay"

    def __init__(self, generations: dict[str, str], *, source: str) -> None:
        super().__init__(cache=None)
        self.generations = generations
        self.source = source

    def _generate(self, tasks, *, store, on_phase):  # type: ignore[override]
        for task in tasks:
            yield Generation(task.task_id, self.generations[task.task_id])

    def meta(self) -> dict[str, Any]:
        return {"backend": self.name, "model": None, "generations": self.source}
