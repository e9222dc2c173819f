"""Ctrl-C while generations run: the first one stops the run cleanly, a second ends it at once.

A terminal sends SIGINT to the whole process group: pytest's process and vLLM's engine core
both get it. The engine core dies of it, so the call that waits for its outputs may end in
vLLM's ``EngineDeadError`` instead of a ``KeyboardInterrupt``; pytest would then report that
error on every task. ``SigintGuard`` remembers that an interrupt came, so the caller can tell
the two apart, and turns a second Ctrl-C (while the engine is torn down) into an immediate exit.
No pytest here: the guard is plain signal handling.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

# What a shell reports for a process ended by SIGINT (128 + 2).
SECOND_INTERRUPT_EXIT = 130


class SigintGuard:
    """``with SigintGuard() as guard:`` raises ``KeyboardInterrupt`` on the first SIGINT, as
    Python's default handler does, and records it in ``guard.interrupted``; a second SIGINT
    inside the block writes one line to stderr and exits the process at once (exit status 130),
    whatever the first one's cleanup is waiting on. Outside the main thread (where no signal
    handler can be set) it does nothing."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> SigintGuard:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.interrupted:
            # os.write: no Python buffer or lock that the interrupted code may hold.
            os.write(2, b"\nstructeval: second interrupt: exiting at once\n")
            kill_children()  # the engine core would outlive us: os._exit runs no cleanup
            os._exit(SECOND_INTERRUPT_EXIT)
        self.interrupted = True
        raise KeyboardInterrupt


def kill_children() -> None:
    """SIGKILL every process this one started (vLLM's engine core and its workers, a server),
    and theirs, read from /proc: an exit that skips every cleanup must not leave them behind
    holding memory. Nothing happens where /proc is absent."""
    pids = [os.getpid()]
    seen: set[int] = set()
    while pids:
        pid = pids.pop()
        children = []
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            threads = []
        for thread in threads:  # each thread's own children: any of them may have forked
            try:
                with open(f"/proc/{pid}/task/{thread}/children", encoding="ascii") as handle:
                    children += [int(child) for child in handle.read().split()]
            except OSError:
                continue
        for child in children:
            if child not in seen:
                seen.add(child)
                pids.append(child)
    for child in seen:
        try:
            os.kill(child, signal.SIGKILL)
        except OSError:
            pass
