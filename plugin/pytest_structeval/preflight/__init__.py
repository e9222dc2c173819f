"""Environment checks that run before any engine starts, as pytest items or standalone
(``python -m pytest_structeval.preflight``).

``runner`` runs them (``preflight_checks``, the CLI ``main``); ``table`` lists them with what
each needs; ``checks`` (software and device) and ``inputs`` (model, adapter, task file, output
directory) are the checks themselves; ``environment`` gathers the facts they share, from
``metadata`` (installed distributions), ``probes`` (imports, in a fresh interpreter),
``model_files`` and ``facts`` (the version facts written once)."""

from .results import CheckResult
from .runner import REPLAY_NO_ENGINE, REPLAY_NO_MODEL, Check, main, preflight_checks
from .table import CHECK_NAMES

__all__ = [
    "CHECK_NAMES",
    "REPLAY_NO_ENGINE",
    "REPLAY_NO_MODEL",
    "Check",
    "CheckResult",
    "main",
    "preflight_checks",
]
