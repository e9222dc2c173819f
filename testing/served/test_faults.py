"""The OpenAI client against a stub that injects faults (fault_server.py): 500s, 429s, 400s,
garbage JSON, truncated bodies, answers slower than the timeout, a server dying mid-run and a
session killed mid-run. Completed answers survive in the cache, each failure is named per task
with its cause, a re-run sends only what is missing, and every run ends in bounded time."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fault_server import ADAPTER, MODEL, FaultServer, answer_for

from pytest_structeval.backends.base import TaskFailure
from pytest_structeval.backends.cache import GenerationCache
from pytest_structeval.backends.openai_client import EndpointError
from pytest_structeval.backends.platform import platform_is_cpu
from pytest_structeval.backends.request import NEUTRAL_SAMPLING, sampling_params
from pytest_structeval.backends.served import OpenAIBackend
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Engine, RequestPolicy, Sampling, Serving, Settings
from pytest_structeval.tasks import Task

PLUGIN = Path(__file__).resolve().parents[2] / "plugin"
FAST = RequestPolicy(
    concurrency=4, request_timeout=0.5, max_attempts=3, retry_backoff=0.01, health_timeout=2
)


def make_tasks(*queries: str) -> list[Task]:
    return [
        Task(task_id=f"t{i}", task_name="Text to JSON", query=q, output_type="JSON")
        for i, q in enumerate(queries)
    ]


def served(endpoint: str, **flat: object) -> tuple[Engine, Sampling, Serving]:
    """The sections an OpenAIBackend takes; ``model`` None: the one model the server serves."""
    settings = Settings.of(endpoint=endpoint, **{"policy": FAST, "model": None, **flat})
    return settings.engine, settings.sampling, settings.serving


def backend_for(stub: FaultServer, cache: GenerationCache | None = None, **config: object):
    return OpenAIBackend(*served(stub.url, **config), cache=cache, progress=False)


def test_each_fault_fails_only_its_task_with_its_cause(stub: FaultServer, tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path / "cache")
    tasks = make_tasks(
        "good one",
        "fault=500",
        "fault=500x2 (recovers on the third attempt)",
        "fault=429",
        "fault=429x1 (recovers after Retry-After)",
        "fault=400",
        "fault=garbage",
        "fault=truncated",
        "fault=slow",
        "good two",
    )
    backend = backend_for(stub, cache)
    started = time.monotonic()
    generations = backend.generate(tasks)
    elapsed = time.monotonic() - started

    assert elapsed < 10, "every fault is bounded by the timeout and the retry budget"
    assert {g.task_id: g.text for g in generations.values()} == {
        t.task_id: answer_for(t.query) for t in tasks if t.task_id in ("t0", "t2", "t4", "t9")
    }
    failures = backend.failures
    assert set(failures) == {"t1", "t3", "t5", "t6", "t7", "t8"}
    assert failures["t1"] == TaskFailure("t1", "HTTP 500: boom", 3)
    assert failures["t3"] == TaskFailure("t3", "HTTP 429: slow down", 3)
    assert failures["t5"].attempts == 1  # a 4xx is not retried
    assert failures["t5"].cause == "HTTP 400: This model's maximum context length is 4096 tokens"
    assert failures["t6"].attempts == 1
    assert failures["t6"].cause.startswith("malformed answer: not JSON")
    assert failures["t7"].attempts == 3
    assert failures["t7"].cause.startswith("RemoteProtocolError: peer closed connection")
    assert failures["t8"] == TaskFailure("t8", "no answer within the request timeout of 0.5 s", 1)
    assert "t8" in failures["t8"].message() and "0.5 s" in failures["t8"].message()

    # 2 each for the persistent 500, 429 and truncated body; 2 + 1 for those that recovered.
    assert backend.stats.retries == 9
    assert backend.stats.failed == 6 and backend.stats.generated == 4
    meta = backend.meta()
    assert meta["retries"] == 9 and meta["failed_requests"] == 6
    assert {f["task_id"]: f["cause"] for f in meta["request_failures"]}["t1"] == "HTTP 500: boom"

    # Answers are cached; failures are not.
    identity = backend.cache_identity()
    assert [cache.get(identity, t) is not None for t in tasks] == [
        t.task_id in generations for t in tasks
    ]

    # The server is fixed: a re-run asks only for the six that failed.
    stub.faults = False
    sent = len(stub.requests)
    rerun = backend_for(stub, cache)
    again = rerun.generate(tasks)
    assert len(stub.requests) - sent == 6
    assert rerun.stats.cache_hits == 4 and rerun.stats.generated == 6 and not rerun.failures
    assert {t: g.text for t, g in again.items()} == {t.task_id: answer_for(t.query) for t in tasks}


def test_a_server_dying_mid_run_keeps_what_finished(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path / "cache")
    tasks = make_tasks(*(f"question {i}" for i in range(8)))
    policy = RequestPolicy(concurrency=1, max_attempts=3, retry_backoff=0.05, health_timeout=2)
    with FaultServer() as stub:
        stub.die_after = 3
        backend = backend_for(stub, cache, policy=policy)
        started = time.monotonic()
        generations = backend.generate(tasks)
        assert time.monotonic() - started < 10
    assert sorted(generations) == ["t0", "t1", "t2"]
    assert sorted(backend.failures) == [f"t{i}" for i in range(3, 8)]
    for failure in backend.failures.values():
        assert failure.attempts == 3
        assert failure.cause.startswith(("ConnectError", "RemoteProtocolError", "ReadError"))

    # Another server, same model (on another port: the cache is keyed by what is served, not
    # by the URL): only the five that never got an answer are sent.
    with FaultServer() as fresh:
        rerun = backend_for(fresh, cache, policy=policy)
        again = rerun.generate(tasks)
        assert [r["messages"][0]["content"] for r in fresh.requests] == [
            f"question {i}" for i in range(3, 8)
        ]
    assert rerun.stats.cache_hits == 3 and len(again) == 8


KILLED_RUN = """
import sys
from pytest_structeval.backends.cache import GenerationCache
from pytest_structeval.backends.served import OpenAIBackend
from pytest_structeval.settings import Engine, RequestPolicy, Sampling, Serving
from pytest_structeval.tasks import Task

tasks = [Task(f"t{i}", "Text to JSON", q, "JSON") for i, q in enumerate(sys.argv[3:])]
policy = RequestPolicy(concurrency=1, request_timeout=120)
serving = Serving(endpoint=sys.argv[1], policy=policy)
OpenAIBackend(Engine(model=None), Sampling(), serving, cache=GenerationCache(sys.argv[2]),
              progress=False).generate(tasks)
"""


def test_a_session_killed_mid_run_regenerates_nothing_that_finished(
    stub: FaultServer, tmp_path: Path
) -> None:
    cache_dir = tmp_path / "cache"
    queries = [f"question {i}" for i in range(4)] + ["fault=slow", "question 5"]
    stub.slow_seconds = 60
    run = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, stub.url, str(cache_dir), *queries],
        env={**os.environ, "PYTHONPATH": str(PLUGIN)},
    )
    try:
        deadline = time.monotonic() + 60
        while len(list(cache_dir.rglob("*.json"))) < 4:
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.2)  # it is now waiting on the slow answer
    finally:
        run.send_signal(signal.SIGKILL)
        run.wait()
    assert len(list(cache_dir.rglob("*.json"))) == 4

    stub.faults = False
    sent = len(stub.requests)
    rerun = backend_for(stub, GenerationCache(cache_dir))
    generations = rerun.generate(make_tasks(*queries))
    # Requests are concurrent: which of the two arrives first is up to the scheduler.
    assert sorted(r["messages"][0]["content"] for r in stub.requests[sent:]) == sorted(queries[4:])
    assert rerun.stats.cache_hits == 4 and len(generations) == 6


def test_each_request_carries_the_offline_prompt_and_sampling(stub: FaultServer) -> None:
    tasks = make_tasks("Please output JSON for a book")
    backend_for(stub, max_tokens=64, temperature=0.0).generate(tasks)
    backend_for(stub, max_tokens=32, temperature=0.7, seed=5, adapter=ADAPTER).generate(tasks)
    greedy, sampled = stub.requests
    assert greedy["model"] == MODEL and sampled["model"] == ADAPTER  # the LoRA module by name
    for body in (greedy, sampled):
        assert body["messages"] == [{"role": "user", "content": tasks[0].query}]
        assert body["n"] == 1 and body["stream"] is False
        for key, value in NEUTRAL_SAMPLING.items():
            assert body[key] == value  # never the model's generation_config.json defaults
        assert "structured_outputs" not in body
    assert (greedy["temperature"], greedy["max_tokens"], "seed" in greedy) == (0.0, 64, False)
    assert (sampled["temperature"], sampled["max_tokens"], sampled["seed"]) == (0.7, 32, 5)


def test_structured_outputs_ride_in_the_request(stub: FaultServer) -> None:
    tasks = [
        Task("j", "Text to JSON", "a JSON book", "JSON"),
        Task("y", "Text to YAML", "a YAML book", "YAML"),
    ]
    backend_for(stub, structured_outputs=True).generate(tasks)
    by_query = {r["messages"][0]["content"]: r for r in stub.requests}
    assert by_query["a JSON book"]["structured_outputs"] == {"json_object": True}
    assert "structured_outputs" not in by_query["a YAML book"]  # YAML stays free


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_sampling_is_the_offline_engines(temperature: float) -> None:
    sampling = Sampling(temperature=temperature, max_tokens=77)
    offline = VllmBackend(Engine(model="any/model"), sampling)
    assert offline.sampling_params == sampling_params(
        Sampling(temperature=temperature, max_tokens=77, seed=0), cpu=platform_is_cpu()
    )


def test_a_cpu_server_gets_no_per_request_seed(stub: FaultServer) -> None:
    """vLLM's CPU build cannot rewind a per-request generator (request.sampling_params): a
    server of our own on a CPU machine is sent the sampling without it, and its identity says
    so; an endpoint, whose platform is unknown, keeps it."""
    tasks = make_tasks("Please output JSON for a book")
    served_args = served(stub.url, max_tokens=32, temperature=0.7, seed=5)
    cpu = OpenAIBackend(*served_args, progress=False, cpu_server=True)
    cpu.generate(tasks)
    endpoint = OpenAIBackend(*served_args, progress=False)
    endpoint.generate(tasks)
    on_cpu, elsewhere = stub.requests
    assert (on_cpu["temperature"], "seed" in on_cpu) == (0.7, False)
    assert elsewhere["seed"] == 5
    assert "seed" not in cpu.cache_identity()["sampling_params"]
    assert endpoint.cache_identity()["sampling_params"]["seed"] == 5
    assert {k: v for k, v in on_cpu.items() if k != "seed"} == {
        k: v for k, v in elsewhere.items() if k != "seed"
    }


def test_api_key_from_argument_or_environment(
    stub: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    stub.api_key = "s3cret"
    tasks = make_tasks("q")
    assert backend_for(stub, api_key="s3cret").generate(tasks)["t0"].text == answer_for("q")
    monkeypatch.setenv("VLLM_API_KEY", "s3cret")
    assert backend_for(stub).generate(tasks)["t0"].text == answer_for("q")
    monkeypatch.setenv("OPENAI_API_KEY", "s3cret")  # never sent to another server
    monkeypatch.delenv("VLLM_API_KEY")
    with pytest.raises(EndpointError, match=r"refused the API key \(HTTP 401.*\$VLLM_API_KEY"):
        backend_for(stub).connect()
    with pytest.raises(EndpointError, match=r"refused the API key.*--api-key"):
        backend_for(stub, api_key="wrong").connect()
    assert "s3cret" not in repr(Serving(endpoint=stub.url, api_key="s3cret"))


def test_model_and_adapter_must_be_served(stub: FaultServer) -> None:
    info = backend_for(stub).connect()  # no --model: the one base model
    assert info.model["id"] == MODEL and info.version == "0.0.stub"
    assert backend_for(stub, adapter=ADAPTER).connect().model["id"] == MODEL  # its parent
    with pytest.raises(EndpointError, match=r"serves stub-lora, stub-model, not 'other'"):
        backend_for(stub, model="other").connect()
    with pytest.raises(EndpointError, match=r"no LoRA module 'nope'.*--lora-modules nope=PATH"):
        backend_for(stub, adapter="nope").connect()


def test_identity_says_what_the_server_serves(stub: FaultServer) -> None:
    identity = backend_for(stub, max_tokens=16).cache_identity()
    assert identity == {
        "backend": "openai",
        "served_model": {
            "id": MODEL,
            "root": "/models/stub",
            "parent": None,
            "max_model_len": 4096,
        },
        "adapter": None,
        "vllm": "0.0.stub",
        "sampling_params": {**NEUTRAL_SAMPLING, "temperature": 0.0, "max_tokens": 16},
        "structured_outputs": False,
    }
    assert backend_for(stub, adapter=ADAPTER).cache_identity()["adapter"]["id"] == ADAPTER


def test_an_unhealthy_server_is_a_clear_error_in_bounded_time(stub: FaultServer) -> None:
    stub.health_status = 503
    started = time.monotonic()
    with pytest.raises(EndpointError) as raised:
        backend_for(stub).generate(make_tasks("q"))
    assert time.monotonic() - started < 6
    assert f"http://127.0.0.1:{stub.port}" in str(raised.value)
    assert "within 2 s (last: HTTP 503 (vLLM's engine is dead))" in str(raised.value)


def test_nothing_listening_is_a_clear_error(stub: FaultServer) -> None:
    url = stub.url
    stub.die()
    time.sleep(0.2)
    with pytest.raises(EndpointError, match=r"did not answer GET /health.*ConnectError"):
        OpenAIBackend(*served(url)).connect()


def test_settings_are_checked_and_travel_to_workers() -> None:
    config = served("http://h:8000/", api_key="k")
    assert pickle.loads(pickle.dumps(config)) == config
    assert OpenAIBackend(*config).base_url == "http://h:8000/v1"
    assert OpenAIBackend(*served("http://h:8000/v1/")).base_url == "http://h:8000/v1"
    with pytest.raises(ValueError, match="http:// or https://"):
        OpenAIBackend(*served("h:8000"))
    for bad in ({"concurrency": 0}, {"max_attempts": 0}, {"request_timeout": 0}):
        with pytest.raises(ValueError):
            RequestPolicy(**bad)  # type: ignore[arg-type]
    assert json.dumps(TaskFailure("t", "HTTP 500: boom", 3).to_dict())
