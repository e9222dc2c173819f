"""Environment checks that run before any engine starts, as pytest items or standalone
(``python -m pytest_structeval.preflight``)."""

from .checks import CHECK_NAMES, Check, CheckResult, PreflightConfig, main, preflight_checks

__all__ = ["CHECK_NAMES", "Check", "CheckResult", "PreflightConfig", "main", "preflight_checks"]
