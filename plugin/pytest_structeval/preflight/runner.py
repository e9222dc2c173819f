"""Running the preflight: ``preflight_checks`` turns the table into ``Check``s that share one
``environment.Env``, and ``main`` is ``python -m pytest_structeval.preflight``.

No pytest: the plugin makes one item per check of ``preflight_checks(settings, ...)``, and the
standalone run prints one line per check (exit status 1 when one fails) on a machine that has
neither pytest-structeval's optional dependencies nor vLLM. Only the standard library is
imported at module level.

A check runs only when what it needs is there; otherwise it skips with the need's reason. A
check that raises fails with the exception (or, for a missing import, skips), so one broken
check never hides the others. A run that starts no engine (``engine_not_needed``) imports
neither vLLM nor torch and starts no probe.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from ..models import BUILTIN_TINY
from ..settings import DEFAULT_MODEL, DEFAULT_OUT, Settings, SettingsError
from ..tasks import BUNDLED_TASKS
from .environment import Device, Env
from .results import CheckResult, failed, skipped
from .table import TABLE, Row, planned_probes

REPLAY_NO_ENGINE = "replay (--generations): no engine starts"
REPLAY_NO_MODEL = "replay (--generations): no model is loaded"


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[], CheckResult]
    needs: tuple[str, ...] = ()


def _runner(row: Row, env: Env) -> Callable[[], CheckResult]:
    def run() -> CheckResult:
        try:
            for need in row.needs:
                reason = need.unmet(env)
                if reason is not None:
                    return skipped(reason)
            return row.run(env)
        except ImportError as exc:
            return skipped(f"cannot run without {exc.name or exc}: pip install {exc.name or 'it'}")
        except Exception as exc:
            return failed(
                f"the check itself crashed: {type(exc).__name__}: {exc}",
                "report this as a pytest-structeval bug, with this message",
            )

    run.__name__ = f"check_{row.name.replace('-', '_')}"
    return run


def preflight_checks(
    settings: Settings,
    *,
    engine_not_needed: str | None = None,
    model_not_needed: str | None = None,
    device: Device = "auto",
    min_free_disk_mb: int = 256,
) -> list[Check]:
    """The checks of an evaluation with ``settings``, in a stable order; facts they share are
    gathered once, on first use.

    ``engine_not_needed`` says why no local engine starts (``REPLAY_NO_ENGINE``, a cache that
    holds every generation, a server): the engine's checks skip with it. ``model_not_needed``
    says why no model is loaded here (``REPLAY_NO_MODEL``, a server): the model and adapter
    checks skip with it. ``device`` picks the route's checks (``auto``: from the installed
    builds)."""
    env = Env(
        settings,
        engine_not_needed=engine_not_needed,
        model_not_needed=model_not_needed,
        device=device,
        min_free_disk_mb=min_free_disk_mb,
        planned_probes=planned_probes,
    )
    return [
        Check(row.name, row.description, _runner(row, env), tuple(n.name for n in row.needs))
        for row in TABLE
    ]


# -- standalone run -------------------------------------------------------------------------


def format_line(check: Check, result: CheckResult, width: int = 0) -> str:
    line = f"{result.status.upper():4}  {check.name:{width}}  {result.detail}"
    return f"{line}  -- fix: {result.fix}" if result.fix else line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_structeval.preflight",
        description="Check this environment for a pytest-structeval run; exit status 1 if a check fails.",
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="ID_OR_PATH",
        help=f"HF model id, local model directory or {BUILTIN_TINY} (default: {DEFAULT_MODEL})",
    )
    parser.add_argument("--adapter", default=None, metavar="PATH", help="LoRA adapter directory")
    parser.add_argument(
        "--tasks", default=None, metavar="PATH", help="task file (default: the bundled set)"
    )
    parser.add_argument(
        "--out",
        default=DEFAULT_OUT,
        metavar="DIR",
        help=f"output directory (default: {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--gpu-memory-utilization",
        type=float,
        default=None,
        metavar="F",
        help="fraction of GPU memory for vLLM (default: vLLM's)",
    )
    parser.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="which backend's checks to run (default: auto, from the installed builds)",
    )
    parser.add_argument("--dtype", default="auto", help="model dtype (default: auto)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.of(
            model=args.model,
            adapter=args.adapter,
            tasks=args.tasks or BUNDLED_TASKS,
            out_dir=args.out,
            gpu_memory_utilization=args.gpu_memory_utilization,
            dtype=args.dtype,
        )
    except SettingsError as exc:
        parser.error(str(exc))  # exit status 2, with the usage
    checks = preflight_checks(settings, device=args.device)
    width = max(len(c.name) for c in checks)
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for check in checks:
        result = check.run()
        counts[result.status] += 1
        print(format_line(check, result, width), flush=True)
    print(f"preflight: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    return 1 if counts["fail"] else 0
