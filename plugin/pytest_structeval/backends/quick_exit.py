"""A vLLM general plugin (entry point group ``vllm.general_plugins``) that lets the processes an
engine of this package runs in exit without the interpreter's last garbage collection.

vLLM loads its general plugins in every process of an engine: the one that builds it, the
engine core and each worker. A process that has imported vLLM holds about 660,000 objects, and
freeing them at exit takes about 2 s on 2 CPU cores, after vLLM's own teardown is complete.
Where vLLM spawns its processes (always on the CPU build) they exit one after the other, each
waiting for its child, so an engine's release took 4.4 s, about 3 s of them in those two exits
(bench/README.md). ``gc.freeze()`` as the last exit handler moves every object to the
permanent generation, which the interpreter's final collection skips; the memory goes back to
the system with the process, as it would anyway. vLLM's engine core does the same itself on
ROCm after a clean shutdown ("Freeze the surviving graph to skip another slow cyclic-GC scan
during finalization", ``EngineCoreProc.run_engine_core`` in 0.32). (A forked child, vLLM's
default on a GPU, already ends with ``os._exit`` and frees nothing.)

Only where ``QUICK_EXIT`` is ``1``, which ``platform.vllm_environment`` sets for the engines
and servers this package starts (set it to ``0`` to keep the collection), and only in
multiprocessing's children (the engine core, the workers): an installed package must not
change how anyone else's vLLM exits, nor how the process that runs pytest ends. Nothing is
imported here but the standard library: vLLM imports this module in each of its processes.
"""

from __future__ import annotations

import atexit
import gc
import multiprocessing
import os
import sys

QUICK_EXIT = "PYTEST_STRUCTEVAL_QUICK_EXIT"

_installed = False


def install() -> None:
    """Register ``_exit_quickly`` as an exit handler, once per process, in a multiprocessing
    child where ``QUICK_EXIT`` is ``1``. Exit handlers run last-registered first, so vLLM's own
    (registered when the engine starts, after the plugins load) run before it."""
    global _installed
    if _installed or os.environ.get(QUICK_EXIT) != "1":
        return
    if multiprocessing.parent_process() is None:
        return
    atexit.register(_exit_quickly)
    _installed = True


def _exit_quickly() -> None:
    """Freeze every object, so the final collection frees none of them. What the interpreter
    would print after this is only about objects it no longer frees (nanobind's leak report for
    triton's module, "Exception ignored in" from a finaliser during teardown), so standard error
    goes to the null device; the process has finished everything it was started for."""
    gc.freeze()
    if sys.stderr is not None:
        sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
