"""Generation cache on disk: one small JSON file per (identity, prompt).

The key is the sha256 of the canonical JSON of everything that determines the output: the
backend's identity (model fingerprint, adapter, chat template, sampling parameters, engine
arguments, vLLM version, ...), the task's prompt and its output format (structured outputs
constrain decoding per format). Each entry is written atomically (``files.write_atomic``), so
concurrent readers never see a partial entry and a run killed mid-way keeps every entry it
finished.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from ..files import write_atomic
from ..tasks import Task
from .base import Generation

# Bump when the entry layout changes; old entries then simply miss.
CACHE_FORMAT = 1


def canonical_json(value: object) -> str:
    """Sorted keys, no whitespace, non-JSON values by ``str``: equal inputs, equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def cache_key(identity: dict[str, Any], task: Task) -> str:
    payload = {
        "format": CACHE_FORMAT,
        "identity": identity,
        "prompt": task.query,
        "output_type": task.output_type,
    }
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


class GenerationCache:
    """Read and write cached generations under ``root`` (two-level fan-out by key prefix).

    ``refresh=True`` ignores existing entries but still writes new ones (``--refresh``)."""

    def __init__(self, root: Path, *, refresh: bool = False) -> None:
        self.root = Path(root)
        self.refresh = refresh

    def path_for(self, identity: dict[str, Any], task: Task) -> Path:
        key = cache_key(identity, task)
        return self.root / key[:2] / f"{key}.json"

    def get(
        self, identity: dict[str, Any], task: Task, *, ignore_refresh: bool = False
    ) -> Generation | None:
        if self.refresh and not ignore_refresh:
            return None
        path = self.path_for(identity, task)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            # A corrupt or unreadable entry loses nothing: it is regenerated and overwritten.
            return None
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            return None
        return Generation(
            task_id=task.task_id,
            text=entry["text"],
            finish_reason=entry.get("finish_reason", "unknown"),
            prompt_tokens=entry.get("prompt_tokens"),
            from_cache=True,
        )

    def put(self, identity: dict[str, Any], task: Task, generation: Generation) -> Path:
        """Store ``generation`` for ``task`` (atomically)."""
        path = self.path_for(identity, task)
        entry = {
            "task_id": generation.task_id,
            "text": generation.text,
            "finish_reason": generation.finish_reason,
            "prompt_tokens": generation.prompt_tokens,
            "output_type": task.output_type,
            "prompt_sha256": hashlib.sha256(task.query.encode("utf-8")).hexdigest(),
        }
        # ASCII escapes: a lone surrogate (models emit them) survives the round trip.
        write_atomic(path, json.dumps(entry))
        return path
