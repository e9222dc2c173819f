"""The served engine through the plugin, as a user runs it: all 150 bundled tasks through
``--endpoint`` (a real server already running on 127.0.0.1) and ``--serve`` (the session's own
server), serial and under ``-n 2``, against the in-process engine's answers for the same model
and sampling. Each run is a fresh ``python -m pytest`` in an empty directory; report.json says
which server answered, and that there was one.

One server for the module plus one per ``--serve`` run (30-60 s each to start on 2 cores).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support import Run, run_pytest

from pytest_structeval.backends.server import VllmServer
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings

SHORT = ("--max-tokens=16",)
EAGER = ("--vllm-arg", "enforce_eager=true")  # torch.compile costs ~50 s a start on 2 cores
SERVED_NAME = "tiny-under-test"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("project")


def evaluate(project: Path, name: str, *args: str) -> Run:
    """One run with a generation cache of its own: each must generate, none may read another's."""
    return run_pytest(project, name, f"--cache-dir={project / name}-cache", *SHORT, *args)


@pytest.fixture(scope="module")
def offline(project: Path, tiny_model: Path) -> Run:
    run = evaluate(project, "offline", f"--model={tiny_model}", *EAGER)
    assert run.returncode == 1, run.output[-3000:]  # random weights: tasks fail, and say why
    assert run.report["meta"]["backend"] == "vllm"
    return run


@pytest.fixture(scope="module")
def server(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VllmServer]:
    """A server as a team would run one, with the engine arguments of the offline run."""
    settings = Settings.of(model=str(tiny_model), max_tokens=16, vllm_args={"enforce_eager": True})
    engine_args = VllmBackend(settings.engine, settings.sampling).engine_args
    with VllmServer(
        engine_args, log_dir=tmp_path_factory.mktemp("server"), served_model_name=SERVED_NAME
    ) as running:
        yield running


def port_is_free(url: str) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", urlsplit(url).port or 80)) != 0


def test_endpoint_gives_the_offline_answers(project, offline, server):
    run = evaluate(
        project,
        "endpoint",
        f"--endpoint={server.url}",
        f"--model={SERVED_NAME}",
        f"--api-key={server.api_key}",
    )
    assert run.returncode == 1, run.output[-3000:]
    meta = run.report["meta"]
    assert meta["backend"] == "openai" and meta["endpoint"] == server.url
    assert meta["servers_started"] == 0 and meta["engine_builds"] == 0
    assert meta["generated"] == 150 and meta["cache_hits"] == 0
    assert meta["served_model"]["id"] == SERVED_NAME
    assert len(run.inference) == 150 and run.inference == offline.inference


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["serial", "two-workers"])
def test_serve_starts_one_server_and_gives_the_offline_answers(
    project, offline, tiny_model, workers
):
    name = f"serve{len(workers)}"
    run = evaluate(project, name, "--serve", f"--model={tiny_model}", *EAGER, *workers)
    assert run.returncode == 1, run.output[-3000:]
    meta = run.report["meta"]
    assert meta["backend"] == "vllm-serve"
    assert meta["servers_started"] == 1 and meta["generated"] == 150, meta
    assert meta["workers"] == (2 if workers else 1)
    assert run.inference == offline.inference
    log = project / name / "vllm-server.log"
    assert log.is_file() and "Application startup complete" in log.read_text("utf-8")
    assert meta["endpoint"].startswith("http://127.0.0.1:")
    assert port_is_free(meta["endpoint"])  # stopped with the session: nothing left bound
