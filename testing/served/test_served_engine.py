"""All 150 bundled tasks through a real vLLM server (the CPU build, the tiny model, 127.0.0.1):
``--serve`` (the session's own server) and ``--endpoint`` (the same server, already running)
give exactly the offline engine's generations for the same model and sampling.

One server for the module (a start takes 30-60 s on 2 cores) and one offline engine, both
with the plugin's own settings; short answers (max_tokens=16) keep the module near two minutes.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from pytest_structeval.backends.base import Generation
from pytest_structeval.backends.cache import GenerationCache
from pytest_structeval.backends.request import NEUTRAL_SAMPLING
from pytest_structeval.backends.served import OpenAIBackend, VllmServeBackend
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings
from pytest_structeval.tasks import BUNDLED_TASKS, Task, TaskSet

SERVED_NAME = "tiny-under-test"


@pytest.fixture(scope="module")
def tasks() -> list[Task]:
    return list(TaskSet.load(BUNDLED_TASKS))


@pytest.fixture(scope="module")
def config(tiny_model: Path) -> Settings:
    return Settings.of(
        model=SERVED_NAME,  # served under this name; the files come from model_path
        max_tokens=16,
        vllm_args={"enforce_eager": True},  # torch.compile costs ~50 s a start, gains nothing
    )


@pytest.fixture(scope="module")
def offline(config: Settings, tasks: list[Task], tiny_model: Path) -> dict[str, Generation]:
    backend = VllmBackend(
        config.engine, config.sampling, model_path=str(tiny_model), progress=False
    )
    try:
        return backend.generate(tasks)
    finally:
        backend.close()


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served-cache")


@pytest.fixture(scope="module")
def served(
    config: Settings, cache_dir: Path, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> Iterator[VllmServeBackend]:
    backend = VllmServeBackend(
        config.engine,
        config.sampling,
        config.serving,
        model_path=str(tiny_model),
        log_dir=tmp_path_factory.mktemp("out"),
        cache=GenerationCache(cache_dir),
        progress=False,
    )
    try:
        yield backend
    finally:
        backend.close()


def same(a: dict[str, Generation], b: dict[str, Generation]) -> bool:
    return {k: (g.text, g.finish_reason) for k, g in a.items()} == {
        k: (g.text, g.finish_reason) for k, g in b.items()
    }


def test_serve_matches_the_offline_engine_on_all_150_tasks(
    served: VllmServeBackend, offline: dict[str, Generation], tasks: list[Task]
) -> None:
    generations = served.generate(tasks)
    assert len(generations) == 150 and not served.failures
    assert same(generations, offline)

    meta = served.meta()
    assert meta["backend"] == "vllm-serve" and meta["servers_started"] == 1
    assert meta["endpoint"] == served.server.url.rstrip("/")
    assert meta["endpoint"].startswith("http://127.0.0.1:")
    assert meta["served_model"]["id"] == SERVED_NAME
    assert meta["server_vllm"] == meta["vllm"]  # the server runs this installation's vLLM
    assert (
        meta["engine_args"]
        == VllmBackend(served.engine, served.sampling, model_path=served.model_path).engine_args
    )
    command = meta["server"]["command"]
    assert command[1:3] == ["-m", "pytest_structeval.backends.server"]
    assert ["--dtype", "float32"] == command[command.index("--dtype") :][:2]
    assert "--enforce-eager" in command and "--data-parallel-size" not in command  # no GPUs
    assert meta["retries"] == 0 and meta["failed_requests"] == 0
    log = Path(meta["server"]["log"])
    assert log.name == "vllm-server.log" and "Application startup complete" in log.read_text()


def test_endpoint_on_the_running_server_matches_too(
    served: VllmServeBackend, offline: dict[str, Generation], tasks: list[Task]
) -> None:
    served.generate(tasks[:1])  # the server is up (the cache answers, nothing is sent)
    server = served.server
    backend = OpenAIBackend(
        *(lambda s: (s.engine, s.sampling, s.serving))(
            Settings.of(
                endpoint=server.url, model=SERVED_NAME, api_key=server.api_key, max_tokens=16
            )
        ),
        progress=False,
    )
    generations = backend.generate(tasks)
    assert same(generations, offline)
    identity = backend.cache_identity()
    assert identity["vllm"] == served.meta()["vllm"]
    assert identity["served_model"] == {
        "id": SERVED_NAME,
        "root": str(served.model_path),
        "parent": None,
        "max_model_len": 4096,
    }
    assert identity["sampling_params"] == {
        **NEUTRAL_SAMPLING,
        "temperature": 0.0,
        "max_tokens": 16,
    }
    meta = backend.meta()
    assert meta["backend"] == "openai" and meta["servers_started"] == 0
    assert meta["endpoint"] == server.url


def test_the_server_demands_its_key_and_hides_it(
    served: VllmServeBackend, tasks: list[Task]
) -> None:
    served.generate(tasks[:1])  # the server is up, whichever test of the module ran first
    server = served.server
    assert server.process is not None
    assert httpx.get(f"{server.url}/models", trust_env=False).status_code == 401
    headers = {"Authorization": f"Bearer {server.api_key}"}
    assert httpx.get(f"{server.url}/models", headers=headers, trust_env=False).status_code == 200
    cmdline = Path(f"/proc/{server.process.pid}/cmdline").read_bytes()
    assert server.api_key.encode() not in cmdline
    assert server.api_key not in repr(served.meta())


def test_a_rerun_sends_only_what_the_cache_lacks(
    served: VllmServeBackend, cache_dir: Path, tasks: list[Task]
) -> None:
    served.generate(tasks)
    identity = served.cache_identity()
    cache = GenerationCache(cache_dir)
    for task in tasks[:5]:
        cache.path_for(identity, task).unlink()
    before = (served.stats.generated, served.stats.cache_hits)
    served.generate(tasks)
    assert served.stats.generated - before[0] == 5
    assert served.stats.cache_hits - before[1] == 145
    assert served.stats.servers_started == 1  # the same server, still up


def test_a_run_served_from_the_cache_starts_no_server(
    served: VllmServeBackend,
    config: Settings,
    cache_dir: Path,
    tmp_path: Path,
    tasks: list[Task],
    tiny_model: Path,
) -> None:
    served.generate(tasks)  # everything cached
    again = VllmServeBackend(
        config.engine,
        config.sampling,
        config.serving,
        model_path=str(tiny_model),
        log_dir=tmp_path,
        cache=GenerationCache(cache_dir),
        progress=False,
    )
    try:
        generations = again.generate(tasks)
    finally:
        again.close()
    assert len(generations) == 150 and again.stats.cache_hits == 150
    assert again.stats.servers_started == 0 and again.meta()["server"] is None
    assert not (tmp_path / "vllm-server.log").exists()


def test_a_server_killed_mid_run_is_named_and_replaced(
    served: VllmServeBackend, cache_dir: Path, tasks: list[Task]
) -> None:
    """Last in the module: it kills the module's server (the next generate starts another)."""
    served.generate(tasks[:1])
    server = served.server
    assert server.process is not None
    process = server.process
    group = process.pid

    class KillingCache(GenerationCache):
        """Kills the server (and its engine, as the OOM killer would) once the first answer of
        the batch is stored, while the others are in flight."""

        def put(self, identity: dict, task: Task, generation: Generation) -> Path:
            path = super().put(identity, task, generation)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            process.wait(timeout=60)  # reaped: from here on the backend knows it is gone
            return path

    fresh = [replace(t, task_id=f"new-{t.task_id}", query=t.query + " (again)") for t in tasks]
    served.cache = KillingCache(cache_dir)
    # Two at a time, so the kill lands with most of the batch unsent: with all 150 in flight
    # a fast server could answer every one before the first answer is stored.
    assert served.client is not None
    served.client.concurrency = 2
    retries_before = served.stats.retries
    try:
        generations = served.generate(fresh)
    finally:
        served.cache = GenerationCache(cache_dir)
    assert len(served.failures) >= 148, "the server died with requests in flight"
    # Nothing is retried against a server known to be dead: the unsent tasks fail at once.
    assert served.stats.retries == retries_before
    assert sum(f.attempts == 0 for f in served.failures.values()) >= 147
    unsent = next(f for f in served.failures.values() if f.attempts == 0)
    assert unsent.message() == f"no generation for task {unsent.task_id}: {unsent.cause}"
    assert set(generations) | set(served.failures) == {t.task_id for t in fresh}
    for failure in served.failures.values():
        assert failure.cause.endswith(
            f"(the vLLM server exited with code -9; see {server.log_path})"
        )
    missing = len(served.failures)

    sent_before, hits_before = served.stats.generated, served.stats.cache_hits
    again = served.generate(fresh)  # a new server, for what is missing only
    assert len(again) == 150 and not served.failures
    assert served.stats.servers_started == 2
    assert served.stats.generated - sent_before == missing
    assert served.stats.cache_hits - hits_before == 150 - missing
