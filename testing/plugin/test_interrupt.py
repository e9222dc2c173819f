"""Ctrl-C during generation, as a terminal sends it: SIGINT to the whole process group of a real
run (the bundled 150 tasks, builtin:tiny on the CPU engine) while the engine generates.

Greedy answers of the random tiny model rarely end before ``--max-tokens``, so the answers are
made to finish in waves: at most 8 sequences run at once (``max_num_seqs``), 256 tokens each,
which on two cores is about a second per wave and 19 waves in all. The interrupt lands after
the first wave, with some generations finished and most not. (A long ``--max-tokens`` with
every sequence running at once made the first answer wait about two minutes.)
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import XDIST_WORKER_VARS

from pytest_structeval.core import Evaluation
from pytest_structeval.files import CACHE_ENV
from pytest_structeval.settings import Settings

MAX_TOKENS, MAX_NUM_SEQS = 256, 8
ARGS = (
    "--model=builtin:tiny",
    f"--max-tokens={MAX_TOKENS}",
    "--vllm-arg",
    "enforce_eager=true",
    "--vllm-arg",
    f"max_num_seqs={MAX_NUM_SEQS}",
)
# On two shared cores an engine takes half a minute or more to start.
START_TIMEOUT = 600


def cached(cache: Path) -> int:
    """Generations stored so far: each is written the moment the engine finishes it (vLLM's
    progress bar, which would say the same, is drawn only on a terminal)."""
    return sum(1 for _ in (cache / "generations").glob("*/*.json"))


class Running:
    """``python -m pytest`` in its own process group (as a shell starts a job), read live."""

    def __init__(self, workdir: Path, *args: str) -> None:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
        for var in XDIST_WORKER_VARS:
            env.pop(var, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=workdir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output = b""
        os.set_blocking(self.process.stdout.fileno(), False)  # type: ignore[union-attr]

    def read(self) -> None:
        try:
            chunk = os.read(self.process.stdout.fileno(), 65536)  # type: ignore[union-attr]
        except BlockingIOError:
            return
        self.output += chunk

    def interrupt(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)

    def finish(self, timeout: float) -> float:
        """Seconds until the process exits; fails (and kills the group) past ``timeout``."""
        started = time.monotonic()
        while self.process.poll() is None:
            self.read()
            if time.monotonic() - started > timeout:
                self.kill()
                pytest.fail(f"still running {timeout} s after the interrupt:\n{self.text[-3000:]}")
            time.sleep(0.05)
        seconds = time.monotonic() - started
        os.set_blocking(self.process.stdout.fileno(), True)  # type: ignore[union-attr]
        self.output += self.process.stdout.read()  # type: ignore[union-attr]
        return seconds

    def kill(self) -> None:
        with_group = self.process.pid
        try:
            os.killpg(with_group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    @property
    def text(self) -> str:
        return self.output.decode("utf-8", errors="replace")


def generating(workdir: Path, cache: Path, name: str) -> Running:
    """A run of the 150 tasks, returned once some generations have finished."""
    (workdir / name).mkdir()
    run = Running(
        workdir / name, "-q", f"--out={workdir / name / 'out'}", f"--cache-dir={cache}", *ARGS
    )
    deadline = time.monotonic() + START_TIMEOUT
    while cached(cache) == 0:
        run.read()
        if run.process.poll() is not None or time.monotonic() > deadline:
            run.kill()
            pytest.fail(f"no generation finished:\n{run.text[-3000:]}")
        time.sleep(0.2)
    return run


def test_ctrl_c_during_generation_ends_the_run_as_pytest_does(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    run = generating(tmp_path, cache, "first")
    seen_done = cached(cache)
    run.interrupt()
    seconds = run.finish(timeout=60)
    text = run.text
    assert run.process.returncode == pytest.ExitCode.INTERRUPTED, text[-3000:]
    assert seconds <= 15, f"exited {seconds:.1f} s after the interrupt"
    assert "KeyboardInterrupt" in text
    assert "Traceback" not in text and "EngineDeadError" not in text, text[-5000:]
    assert "ERROR at setup" not in text
    assert group_gone(run.process.pid, timeout=10), "a process of the run outlived it"
    # Lines as a terminal shows them: a progress bar redraws its own line with "\r".
    lines = [line for line in text.split("\n") if line.strip()]
    assert len(lines) <= 60, "\n".join(lines)
    said = re.search(
        r"structeval: interrupted during generation: (\d+) of 150 generations finished before "
        r"the interrupt and are kept in the cache .*; the other (\d+) were not generated",
        text,
    )
    assert said, text[-3000:]
    kept, missing = int(said[1]), int(said[2])
    assert kept >= seen_done and kept + missing == 150 and missing > 0
    # The phase lines still add up: the generation until the interrupt is counted as such,
    # not as the tasks' pytest work.
    generating_for = re.search(
        r"structeval: generation \(cache lookup included\) (\d+\.\d) s", text
    )
    assert generating_for and float(generating_for[1]) > 0, text[-3000:]
    # What the message says is what the cache holds: looked up as a re-run would, with no engine.
    settings = Settings.of(
        model="builtin:tiny",
        max_tokens=MAX_TOKENS,
        vllm_args={"enforce_eager": True, "max_num_seqs": MAX_NUM_SEQS},
        root=cache,
    )
    with Evaluation(settings) as evaluation:
        hits, misses = evaluation.backend.lookup(evaluation.select())
    assert (len(hits), len(misses)) == (kept, missing)


def test_a_second_ctrl_c_ends_the_run_at_once(tmp_path: Path) -> None:
    run = generating(tmp_path, tmp_path / "cache", "twice")
    run.interrupt()
    time.sleep(0.3)
    run.interrupt()
    seconds = run.finish(timeout=30)
    assert run.process.returncode == 130, run.text[-3000:]
    assert "second interrupt: exiting at once" in run.text
    assert seconds <= 5, f"exited {seconds:.1f} s after the second interrupt"
    # The exit skips every cleanup: the engine core must not be left running on its own.
    assert group_gone(run.process.pid, timeout=10), "a process of the run outlived it"


def group_gone(group: int, timeout: float) -> bool:
    """Whether every process of ``group`` (the run and what it started) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    os.killpg(group, signal.SIGKILL)
    return False


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The built-in model is built under the cache root: keep it in this test's directory.
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
