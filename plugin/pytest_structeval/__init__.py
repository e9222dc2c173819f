"""pytest-structeval: evaluate a language model on StructEval-T, from pytest or from Python.

The pipeline, one stage per module: ``tasks`` -> ``backends`` (replay, the in-process vLLM
engine, a vLLM server; with ``cache``) -> ``scoring`` (extract, formats, paths, score) ->
``report`` (report, html, snapshots, gate). ``core.Evaluation`` runs it without pytest;
``plugin`` is the thin pytest layer over it; ``reward`` serves the same score to a trainer.
"""

# Read by pyproject.toml (setuptools' attr:) and written into report.json: the version comes
# from the package itself, so it is known even where no package metadata is installed.
__version__ = "0.1.0"

from .core import Evaluation, TaskResult
from .scoring import TaskScore, score_task
from .settings import Settings
from .tasks import Task, TaskSet

__all__ = [
    "Evaluation",
    "Settings",
    "Task",
    "TaskResult",
    "TaskScore",
    "TaskSet",
    "__version__",
    "score_task",
]
