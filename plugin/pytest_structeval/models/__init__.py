"""Built-in models: ``--model=builtin:NAME`` resolves to a local directory built on first use.

Each built-in model has a recipe (a function that writes a Hugging Face model directory) and a
recipe version. The directory is ``<cache root>/models/<name>-v<version>``; it is built under a
file lock into a temporary directory that is renamed into place, so concurrent xdist workers
wait for one build and a killed build never leaves a half-written model that later runs use.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..files import cache_root

# Their heavy imports (torch, transformers) are inside the builders.
from . import smollm2, tiny

BUILTIN_PREFIX = "builtin:"


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    version: int
    build: Callable[[Path], object]
    description: str
    weight_bytes: int
    # Why it cannot be built on this machine (a missing package, with the install command),
    # or None; cheap, so that the preflight can ask.
    unavailable: Callable[[], str | None] = lambda: None


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "tiny": BuiltinModel(
        "tiny",
        tiny.RECIPE_VERSION,
        tiny.build_tiny_model,
        "a random 2-layer Qwen3, about 1 MB",
        weight_bytes=1 << 20,
    ),
    "smollm2": BuiltinModel(
        "smollm2",
        smollm2.RECIPE_VERSION,
        smollm2.build_smollm2,
        f"SmolLM2-135M-Instruct from the PyPI package {smollm2.PACKAGE}=={smollm2.PACKAGE_VERSION}"
        ", about 270 MB",
        weight_bytes=smollm2.WEIGHT_BYTES,
        unavailable=smollm2.unavailable_reason,
    ),
}
BUILTIN_TINY = BUILTIN_PREFIX + "tiny"
BUILTIN_SMOLLM2 = BUILTIN_PREFIX + "smollm2"


class ModelError(ValueError):
    """A built-in model name that does not exist, or one that cannot be built here."""


def builtin_model(name: str) -> BuiltinModel | None:
    """The recipe for ``builtin:NAME``; None for any other model id or path."""
    if not name.startswith(BUILTIN_PREFIX):
        return None
    recipe = BUILTIN_MODELS.get(name[len(BUILTIN_PREFIX) :])
    if recipe is None:
        known = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_MODELS)
        raise ModelError(f"unknown built-in model {name!r}; known: {known}")
    return recipe


def check_model_path(name: str) -> None:
    """A model named as a path (``./``, ``../``, ``/``, ``~``) must be a directory that exists:
    raise ``ModelError`` now, before any engine, instead of 150 skipped tasks after the
    preflight. A Hugging Face id (``org/name``) is not a path, and ``builtin:`` names are
    checked by ``builtin_model``."""
    if not name.startswith((".", "/", "~")):
        return
    path = Path(name).expanduser()
    if not path.exists():
        raise ModelError(
            f"model directory {name} does not exist ({path.resolve()}): pass an existing "
            f"model directory, a Hugging Face id (org/name) or {BUILTIN_PREFIX}tiny"
        )


def builtin_path(name: str, *, root: Path | None = None) -> Path | None:
    """Where ``builtin:NAME`` lives once built (whether or not it is built yet)."""
    recipe = builtin_model(name)
    if recipe is None:
        return None
    base = (root if root is not None else cache_root()) / "models"
    return base / f"{recipe.name}-v{recipe.version}"


def resolve_model(name: str, *, root: Path | None = None) -> str:
    """``builtin:NAME`` -> its local directory, built once; any other id or path unchanged.

    ``root`` is the cache root (default ``files.cache_root()``)."""
    final = builtin_path(name, root=root)
    if final is None:
        return name
    recipe = builtin_model(name)
    assert recipe is not None
    if (final / "config.json").is_file():
        return str(final)
    reason = recipe.unavailable()
    if reason is not None:
        raise ModelError(reason)
    from filelock import FileLock  # only a model build takes the lock

    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final.with_name(final.name + ".lock"))):
        if not (final / "config.json").is_file():
            tmp = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-", dir=final.parent))
            try:
                recipe.build(tmp)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return str(final)
