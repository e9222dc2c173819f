"""A sweep of two LoRA adapters through a server (issue 23): ``--serve`` starts one server with
both as LoRA modules, ``--endpoint`` evaluates two modules a running server serves, by name.
Each run's answers are its own adapter's: the offline sweep's for that adapter, and not the
other adapter's.

Three engines on the tiny model, one after another (30-90 s each on 2 cores): the offline
sweep, the ``--serve`` session's server, and the server this module starts for ``--endpoint``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Run, build_lora_adapter, run_pytest

from pytest_structeval.backends import request
from pytest_structeval.backends.server import VllmServer
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings

SMOKE = ("-m", "smoke", "--max-tokens=8", "--no-cache")
EAGER = ("--vllm-arg", "enforce_eager=true")  # torch.compile costs ~50 s a start on 2 cores
NAMES = ("a", "b")
SERVED_NAME = "tiny-under-test"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("served-sweep")


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, project: Path) -> dict[str, Path]:
    return {
        name: build_lora_adapter(tiny_model, project / "adapters" / name, seed=seed)
        for seed, name in enumerate(NAMES, start=1)
    }


def run_outputs(run: Run, name: str) -> tuple[dict, list]:
    """Run ``name``'s report.json meta and its inference.json."""
    folder = run.out / name
    report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return report["meta"], json.loads((folder / "inference.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def offline(project: Path, tiny_model: Path, adapters: dict[str, Path]) -> dict[str, list]:
    run = run_pytest(
        project, "offline", f"--model={tiny_model}",
        *(f"--adapter={n}={p}" for n, p in adapters.items()), *SMOKE, *EAGER,
    )
    assert run.returncode == 1, run.output[-3000:]  # random weights: the tasks fail
    inference = {name: run_outputs(run, name)[1] for name in NAMES}
    # The premise of every comparison below: the two adapters answer differently.
    assert inference["a"] != inference["b"]
    return inference


def test_serve_starts_one_server_for_both_adapters(
    project: Path, tiny_model: Path, adapters: dict[str, Path], offline: dict[str, list]
) -> None:
    run = run_pytest(
        project, "serve", f"--model={tiny_model}", "--serve",
        *(f"--adapter={n}={p}" for n, p in adapters.items()), *SMOKE, *EAGER,
    )
    assert run.returncode == 1, run.output[-3000:]
    outputs = {name: run_outputs(run, name) for name in NAMES}
    metas = {name: meta for name, (meta, _) in outputs.items()}
    assert sum(m["servers_started"] for m in metas.values()) == 1
    command = next(m["server"]["command"] for m in metas.values() if m["servers_started"])
    modules = command.index("--lora-modules")
    assert command[modules + 1 : modules + 3] == [f"{n}={p}" for n, p in adapters.items()]
    assert command[command.index("--max-loras") + 1] == "2"
    assert all(m["backend"] == "vllm-serve" and m["generated"] > 0 for m in metas.values())
    assert {m["served_adapter"]["id"] for m in metas.values()} == set(NAMES)
    for name in NAMES:
        assert outputs[name][1] == offline[name], name


@pytest.fixture(scope="module")
def server(
    tiny_model: Path, adapters: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    """A server a team runs: the tiny model with both adapters as LoRA modules ``a`` and ``b``,
    with the offline sweep's engine arguments."""
    settings = Settings.of(
        model=str(tiny_model), adapter=str(adapters["a"]), max_tokens=8,
        vllm_args={"enforce_eager": True},
    )
    engine_args = VllmBackend(
        settings.engine, settings.sampling, max_lora_rank=8, max_loras=len(adapters)
    ).engine_args
    served = request.served_engine_args(engine_args, {n: str(p) for n, p in adapters.items()})
    with VllmServer(
        served, log_dir=tmp_path_factory.mktemp("server"), served_model_name=SERVED_NAME
    ) as running:
        yield running


def test_endpoint_evaluates_served_modules_by_name(
    project: Path, server: VllmServer, offline: dict[str, list]
) -> None:
    run = run_pytest(
        project, "endpoint", f"--endpoint={server.url}", f"--model={SERVED_NAME}",
        f"--api-key={server.api_key}", *(f"--adapter={n}" for n in NAMES), *SMOKE,
    )
    assert run.returncode == 1, run.output[-3000:]
    for name in NAMES:
        meta, inference = run_outputs(run, name)
        assert meta["backend"] == "openai" and meta["servers_started"] == 0
        assert meta["served_adapter"]["id"] == name
        assert meta["served_model"]["id"] == SERVED_NAME
        assert inference == offline[name], name
