"""A function run in a background thread, joined later: vLLM's import beside the preflight,
and the engine's release beside the tasks and the reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Background:
    """``function`` run in a background thread; ``wait`` joins it, returns the seconds it
    waited, and raises what the function raised."""

    def __init__(self, function: Callable[[], None], name: str) -> None:
        self._function = function
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._function()
        except BaseException as exc:  # raised again in the main thread, by wait()
            self._error = exc

    def wait(self) -> float:
        started = time.perf_counter()
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        return time.perf_counter() - started
