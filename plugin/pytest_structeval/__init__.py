"""pytest-structeval: evaluate a language model on StructEval-T, from pytest or from Python.

The pipeline, one stage per module: ``tasks`` -> ``backends`` (replay, the in-process vLLM
engine, a vLLM server; with ``cache``) -> ``scoring`` (extract, formats, paths, score) ->
``report`` (report, html, snapshots, gate). ``core.Evaluation`` runs it without pytest;
``plugin`` is the thin pytest layer over it; ``reward`` serves the same score to a trainer.
"""

from __future__ import annotations

from typing import Any

# Read by pyproject.toml (setuptools' attr:) and written into report.json: the version comes
# from the package itself, so it is known even where no package metadata is installed.
__version__ = "0.1.0"

# The public names, imported on first use: the preflight runs as
# `python -m pytest_structeval.preflight` on machines without the scoring dependencies.
_EXPORTS = {
    "Evaluation": "core",
    "TaskResult": "core",
    "Settings": "settings",
    "TaskScore": "scoring",
    "score_task": "scoring",
    "Task": "tasks",
    "TaskSet": "tasks",
}
__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_structeval' has no attribute {name!r}")
    from importlib import import_module  # only when a lazy name is first used

    return getattr(import_module(f".{module}", __name__), name)
