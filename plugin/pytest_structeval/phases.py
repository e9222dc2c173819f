"""Where a run's wall time goes: one line per phase, and a last line that adds them up.

The clock starts when the process started (read from ``/proc``, so the interpreter's and
pytest's own start-up count too); each phase adds its seconds; what no phase measured is shown
as such, so the lines always add up to the wall time and an unexplained gap is visible as a
number rather than missing. Registered as its own pytest plugin so that it times the other
plugins' ``pytest_sessionfinish`` (writing the reports) from outside.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest


def process_age() -> float:
    """Seconds since this process started (0 where ``/proc`` does not tell)."""
    try:
        stat = Path("/proc/self/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime, in clock ticks
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return max(0.0, uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class PhaseClock:
    """Named phases with their seconds, in the order they were first added. ``more`` returns
    phases known only at the end (the evaluation's engine start, generation and scoring)."""

    def __init__(self, more: Callable[[], dict[str, float]] | None = None) -> None:
        now = time.perf_counter()
        self.started = now - process_age()
        self.phases: dict[str, float] = {}
        self.more = more
        self.loop: float | None = None  # pytest's test loop, whose phases are added inside it
        self.add("start-up (interpreter, pytest, plugins)", now - self.started)
        self._mark = now

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = self.phases.get(name, 0.0) + seconds

    def lap(self, name: str) -> None:
        """Add the time since the last lap (or the start) as ``name``."""
        now = time.perf_counter()
        self.add(name, now - self._mark)
        self._mark = now

    def lines(self) -> list[str]:
        phases = {**self.phases, **(self.more() if self.more else {})}
        if self.loop is not None:
            outside = ("start-up", "collection", "writing reports", "engine release")
            inside = sum(v for k, v in phases.items() if not k.startswith(outside))
            phases["the tasks' pytest work (fixtures, snapshots, terminal)"] = max(
                0.0, self.loop - inside
            )
        wall = time.perf_counter() - self.started
        named = sum(phases.values())
        lines = [f"{name} {seconds:.1f} s" for name, seconds in phases.items()]
        lines.append(f"pytest and the plugin between these phases {wall - named:.1f} s")
        lines.append(
            f"phases {named:.1f} s + between {wall - named:.1f} s = wall {wall:.1f} s "
            "(until this line)"
        )
        return lines

    # pytest hooks (the clock is registered as a plugin)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self) -> Generator[None, object, object]:
        started = time.perf_counter()
        try:
            return (yield)
        finally:
            self.loop = time.perf_counter() - started

    @pytest.hookimpl(wrapper=True)
    def pytest_sessionfinish(self) -> Generator[None, None, None]:
        started = time.perf_counter()
        before = sum(self.phases.values())
        try:
            return (yield)
        finally:
            # Less what phases of their own timed inside it (the engine's release).
            inside = sum(self.phases.values()) - before
            self.add("writing reports", time.perf_counter() - started - inside)

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_sep("-", "structeval phases")
        for line in self.lines():
            terminalreporter.write_line(f"structeval: {line}")
