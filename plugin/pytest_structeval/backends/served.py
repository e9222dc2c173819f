"""Generations from a vLLM OpenAI-compatible server.

* ``OpenAIBackend`` (``--endpoint``; ``meta.backend = "openai"``): a server that is already
  running, given by its ``/v1`` base URL.
* ``VllmServeBackend`` (``--serve``; ``"vllm-serve"``): starts its own server
  (``server.VllmServer``) on the first cache miss, with the engine arguments the offline backend
  would use (``request.engine_args``), drives it through an ``OpenAIClient`` and stops it on
  ``close``.

Each task is one chat completion holding the offline engine's prompt (one user message with the
raw query) and sampling (``temperature``, ``max_tokens``, ``seed`` as ``VllmBackend`` sets them),
plus the sampling fields the server would otherwise take from the model's
``generation_config.json`` pinned to vLLM's neutral values (``request.NEUTRAL_SAMPLING``), as the offline engine's explicit
``SamplingParams`` are. Up to ``concurrency`` requests are in flight, so vLLM's continuous
batching stays full; each answer goes to the cache the moment it arrives. Connection errors,
429 and 5xx are retried with exponential backoff (bounded attempts, ``Retry-After`` honoured);
a request that still fails, times out or gets a malformed answer becomes a ``TaskFailure`` for
its task alone.

``httpx`` (the HTTP client) is imported where requests are made, so scoring, replay and the
offline engine do not need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..models import resolve_model
from ..settings import Engine, RequestPolicy, Sampling, Serving
from ..tasks import Task
from . import request
from .adapter import validate_adapter
from .base import Backend, Generation, TaskFailure
from .cache import GenerationCache
from .platform import library_versions, platform_is_cpu
from .request import ADAPTER_MODULE
from .server import VllmServer

if TYPE_CHECKING:
    import httpx

# Requests in flight per engine replica: vLLM's largest default max_num_seqs (1024 on 70 GiB+
# GPUs; 256 on smaller ones, 128 for the CPU server), so a default-configured server never runs
# a batch short of requests, and the queue it holds beyond that stays a few batches deep.
DEFAULT_CONCURRENCY = 1024
# Read when no key is given: the variable vLLM's own server reads for its --api-key, so one
# setting serves both. Not OPENAI_API_KEY: that key is for api.openai.com and must not be sent
# to whatever server --endpoint names.
API_KEY_ENV = "VLLM_API_KEY"
CONNECT_TIMEOUT = 30.0
# Connections per httpx client (see OpenAIClient._send_all).
POOL_SIZE = 32


class EndpointError(RuntimeError):
    """The server cannot be used at all (no healthy /health in time, key refused, model or
    adapter not served); the message names the URL. Per-task problems are ``TaskFailure``s."""


@dataclass(frozen=True)
class ServerInfo:
    """What the server said about itself: ``GET /version`` and the chosen ``GET /v1/models``
    cards (``id``, ``root``, ``parent``, ``max_model_len``)."""

    version: str | None
    model: dict[str, Any]
    adapter: dict[str, Any] | None


def api_base(endpoint: str) -> str:
    """``http://h:8000``, ``http://h:8000/``, ``http://h:8000/v1/`` -> ``http://h:8000/v1``."""
    base = endpoint.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(f"endpoint {endpoint!r} must be an http:// or https:// URL")
    return base if base.endswith("/v1") else base + "/v1"


def _card(card: Mapping[str, Any]) -> dict[str, Any]:
    return {key: card.get(key) for key in ("id", "root", "parent", "max_model_len")}


def _error_text(response: httpx.Response) -> str:
    """The server's error message (vLLM: ``{"error": {"message": ...}}``; older:
    ``{"message": ...}``), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        message = error.get("message") if isinstance(error, dict) else error or body.get("message")
        if message:
            return str(message)[:500]
    return response.text[:200] or response.reason_phrase


class MalformedResponse(ValueError):
    """A 200 answer that is not a chat completion."""


def parse_completion(task_id: str, response: httpx.Response) -> Generation:
    try:
        body = response.json()
    except ValueError as exc:
        raise MalformedResponse(f"not JSON ({exc}); body starts {response.text[:80]!r}") from None
    try:
        choice = body["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedResponse(
            f"no choices[0].message.content; body starts {response.text[:80]!r}"
        ) from None
    if content is None:
        content = ""  # no text at all (e.g. everything went to a reasoning parser's field)
    if not isinstance(content, str):
        raise MalformedResponse(f"message.content is {type(content).__name__}, not a string")
    return Generation(task_id, content, request.finish_reason_of(choice.get("finish_reason")))  # type: ignore[arg-type]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _progress_bar(progress: bool | Callable[..., Any], total: int) -> Any:
    if progress is False or total == 0:
        return None
    if progress is True:
        try:
            from tqdm import tqdm  # optional: vLLM brings it; without it there is no bar
        except ImportError:
            return None
        progress = tqdm
    return progress(total=total, desc="Requests", unit="req")


@dataclass(frozen=True)
class Batch:
    """What one ``OpenAIClient.send`` did: an outcome per task, requests sent again, seconds."""

    outcomes: list[Generation | TaskFailure]
    retries: int
    seconds: float


class OpenAIClient:
    """Talks to one OpenAI-compatible vLLM server: finds the model (and adapter) it serves,
    then sends chat completions (``request.chat_body``), ``concurrency`` at a time, retrying
    transient failures. Not a ``Backend``: the backend that owns it keeps the cache, the
    counters and the failures.

    ``model`` None: the one model the server serves. ``api_key`` None: ``$VLLM_API_KEY``, else
    no key. ``progress``: True for a tqdm bar (when tqdm is installed), a tqdm-like factory, or
    False. ``trust_env``: let httpx read proxy and certificate settings from the environment
    (off for the session's own loopback server)."""

    def __init__(
        self,
        endpoint: str,
        *,
        model: str | None,
        adapter: str | None,
        api_key: str | None,
        sampling: Sampling,
        structured_outputs: bool,
        policy: RequestPolicy,
        progress: bool | Callable[..., Any] = True,
        trust_env: bool = True,
    ) -> None:
        self.base_url = api_base(endpoint)
        self.root_url = self.base_url[: -len("/v1")]
        self.key_given = api_key is not None
        self.api_key = api_key if api_key is not None else os.environ.get(API_KEY_ENV) or None
        self.model = model
        self.adapter = adapter
        self.sampling = sampling
        self.structured_outputs = structured_outputs
        self.policy = policy
        self.concurrency = policy.concurrency or DEFAULT_CONCURRENCY
        self.progress = progress
        self.trust_env = trust_env
        self.info: ServerInfo | None = None
        self._retries = 0

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    # -- the server -----------------------------------------------------------------------

    def connect(self) -> ServerInfo:
        """Wait for ``/health``, then read ``/version`` and ``/v1/models`` and pick the model
        (and adapter) the requests name. Once per backend."""
        if self.info is not None:
            return self.info
        import httpx  # lazy: see the module docstring

        with httpx.Client(
            timeout=CONNECT_TIMEOUT, headers=self._headers(), trust_env=self.trust_env
        ) as client:
            self._wait_healthy(client)
            version = None
            try:
                reply = client.get(f"{self.root_url}/version")
                if reply.status_code == 200:
                    version = reply.json().get("version")
            except (httpx.HTTPError, ValueError, AttributeError):
                pass  # an OpenAI-compatible proxy may hide it; the identity says None
            try:
                reply = client.get(f"{self.base_url}/models")
            except httpx.HTTPError as exc:
                raise EndpointError(
                    f"GET {self.base_url}/models failed: {type(exc).__name__}: {exc}"
                ) from None
            if reply.status_code in (401, 403):
                where = "--api-key" if self.key_given else f"${API_KEY_ENV}"
                raise EndpointError(
                    f"{self.base_url} refused the API key (HTTP {reply.status_code}: "
                    f"{_error_text(reply)}); give the server's key with {where}"
                )
            try:
                cards = {c["id"]: c for c in reply.json()["data"]} if reply.is_success else None
            except (ValueError, KeyError, TypeError):
                cards = None
            if cards is None:
                raise EndpointError(
                    f"GET {self.base_url}/models gave HTTP {reply.status_code} without a model "
                    f"list ({_error_text(reply)}); is {self.base_url} a vLLM server's /v1 base?"
                )
        self.info = self._choose(cards, version)
        return self.info

    def _wait_healthy(self, client: httpx.Client) -> None:
        import httpx

        deadline = time.monotonic() + self.policy.health_timeout
        while True:
            try:
                reply = client.get(f"{self.root_url}/health", timeout=5.0)
                if reply.status_code == 200:
                    return
                last = f"HTTP {reply.status_code}" + (
                    " (vLLM's engine is dead)" if reply.status_code == 503 else ""
                )
                if reply.status_code == 404:
                    raise EndpointError(
                        f"{self.root_url}/health does not exist (HTTP 404): --endpoint must be "
                        "a vLLM server's /v1 base URL"
                    )
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise EndpointError(
                    f"the vLLM server at {self.root_url} did not answer GET /health with 200 "
                    f"within {self.policy.health_timeout:g} s (last: {last})"
                )
            time.sleep(1.0)

    def _choose(self, cards: dict[str, dict[str, Any]], version: str | None) -> ServerInfo:
        served = tuple(sorted(cards))
        adapter = cards.get(self.adapter) if self.adapter else None
        if self.adapter and adapter is None:
            raise EndpointError(
                f"{self.base_url} serves no LoRA module {self.adapter!r} (it serves "
                f"{', '.join(served)}); start it with --enable-lora "
                f"--lora-modules {self.adapter}=PATH"
            )
        name = self.model or (adapter or {}).get("parent")
        if name is None:
            bases = [i for i, c in cards.items() if not c.get("parent")]
            if len(bases) != 1:
                raise EndpointError(
                    f"{self.base_url} serves {', '.join(served) or 'no model'}; name one with "
                    "--model"
                )
            name = bases[0]
        if name not in cards:
            raise EndpointError(
                f"{self.base_url} serves {', '.join(served)}, not {name!r}; --model must be a "
                "served model name (the server's --served-model-name)"
            )
        return ServerInfo(version, _card(cards[name]), _card(adapter) if adapter else None)

    # -- identity and provenance ----------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """What the server says it serves (model card, adapter card, vLLM version) and what we
        ask of it; not the URL, so a server moved to another port keeps its cache."""
        info = self.connect()
        return {
            "served_model": info.model,
            "adapter": info.adapter,
            "vllm": info.version,
            "sampling_params": request.request_sampling(self.sampling),
            "structured_outputs": self.structured_outputs,
        }

    def meta(self) -> dict[str, Any]:
        """Never contacts the server: what is known so far."""
        info = self.info
        return {
            "endpoint": self.base_url,
            "served_model": info.model if info else None,
            "served_adapter": info.adapter if info else None,
            "server_vllm": info.version if info else None,
            "sampling_params": request.request_sampling(self.sampling),
            "structured_outputs": request.structured_outputs_meta(self.structured_outputs),
            "concurrency": self.concurrency,
            "request_timeout": self.policy.request_timeout,
            "max_attempts": self.policy.max_attempts,
            "http_client": f"httpx {_httpx_version()}",
        }

    def send(self, tasks: Sequence[Task], store: Callable[[Generation], None] | None) -> Batch:
        """One request per task; ``store`` gets each answer the moment it arrives."""
        info = self.connect()
        model_field = (info.adapter or info.model)["id"]
        started = time.perf_counter()
        retries_before, bar = self._retries, _progress_bar(self.progress, len(tasks))
        try:
            outcomes = asyncio.run(self._send_all(tasks, model_field, store, bar))
        finally:
            if bar is not None:
                bar.close()
        return Batch(outcomes, self._retries - retries_before, time.perf_counter() - started)

    async def _send_all(
        self,
        tasks: Sequence[Task],
        model_field: str,
        store: Callable[[Generation], None] | None,
        bar: Any,
    ) -> list[Generation | TaskFailure]:
        """``concurrency`` workers take tasks in turn from one queue, each sending one request
        at a time, so exactly that many are in flight until the queue runs dry."""
        import httpx

        policy = self.policy
        workers = min(self.concurrency, len(tasks))
        pending = iter(tasks)  # shared: asyncio switches only at awaits, never inside next()
        outcomes: list[Generation | TaskFailure] = []

        async def work(client: httpx.AsyncClient) -> None:
            for task in pending:
                outcome = await self._request(client, task, model_field)
                if store is not None and isinstance(outcome, Generation):
                    store(outcome)  # cached the moment it arrives
                outcomes.append(outcome)
                if bar is not None:
                    bar.update(1)

        tls = httpx.create_ssl_context(trust_env=self.trust_env)  # built once, not per client
        async with contextlib.AsyncExitStack() as stack:
            # Many small pools, not one big one: httpcore hands each request a connection by
            # scanning the whole pool, which made a 1024-connection pool cost the client ~5x
            # the CPU time per request (measured against an instant local server).
            clients = [
                await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=self.base_url,
                        headers=self._headers(),
                        timeout=httpx.Timeout(
                            policy.request_timeout,
                            connect=min(policy.request_timeout, CONNECT_TIMEOUT),
                        ),
                        # One connection per worker: no request waits for a pooled one.
                        limits=httpx.Limits(
                            max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE
                        ),
                        verify=tls,
                        trust_env=self.trust_env,
                    )
                )
                for _ in range(-(-workers // POOL_SIZE))
            ]
            await asyncio.gather(*(work(clients[i // POOL_SIZE]) for i in range(workers)))
        return outcomes

    async def _request(
        self, client: httpx.AsyncClient, task: Task, model_field: str
    ) -> Generation | TaskFailure:
        import httpx

        policy = self.policy
        body = request.chat_body(
            task, model_field, self.sampling, structured_outputs=self.structured_outputs
        )
        for attempt in range(1, policy.max_attempts + 1):
            wait: float | None = None
            try:
                # wait_for bounds the whole request: httpx's read timeout restarts with every
                # byte, so a server trickling an answer would never trip it.
                response = await asyncio.wait_for(
                    client.post("/chat/completions", json=body), policy.request_timeout
                )
            except (asyncio.TimeoutError, httpx.ReadTimeout, httpx.WriteTimeout):
                return TaskFailure(
                    task.task_id,
                    f"no answer within the request timeout of {policy.request_timeout:g} s",
                    attempt,
                )
            except httpx.TransportError as exc:  # refused, reset, truncated body, ...
                cause = f"{type(exc).__name__}: {exc}".rstrip(": ")
            else:
                if response.status_code == 200:
                    try:
                        return parse_completion(task.task_id, response)
                    except MalformedResponse as exc:
                        return TaskFailure(task.task_id, f"malformed answer: {exc}", attempt)
                cause = f"HTTP {response.status_code}: {_error_text(response)}"
                if response.status_code != 429 and response.status_code < 500:
                    return TaskFailure(task.task_id, cause, attempt)  # 4xx: asking again won't help
                wait = _retry_after(response)
            if attempt == policy.max_attempts:
                return TaskFailure(task.task_id, cause, attempt)
            self._retries += 1
            await asyncio.sleep(self._backoff(attempt, wait))
        raise AssertionError("unreachable: the last attempt returns")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        policy = self.policy
        delay = min(policy.max_backoff, policy.retry_backoff * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter
        if retry_after is not None:
            delay = max(delay, min(retry_after, policy.max_backoff))
        return delay


def _httpx_version() -> str | None:
    try:
        import httpx
    except ImportError:
        return None
    return httpx.__version__


def _phase_line(batch: Batch, count: int, url: str) -> str:
    failed = sum(isinstance(o, TaskFailure) for o in batch.outcomes)
    return (
        f"{count} requests to {url} in {batch.seconds:.1f} s "
        f"({batch.retries} retries, {failed} failed)"
    )


class OpenAIBackend(Backend):
    """``--endpoint``: sends every cache miss to a running vLLM server (see the module
    docstring). ``engine`` gives the served model name (None: the one served), the adapter (a
    LoRA module the server serves, ``--lora-modules NAME=PATH``; requests then ask for it) and
    structured outputs; ``serving`` the endpoint, key and request policy."""

    name = "openai"

    def __init__(
        self,
        engine: Engine,
        sampling: Sampling,
        serving: Serving,
        *,
        cache: GenerationCache | None = None,
        progress: bool | Callable[..., Any] = True,
        trust_env: bool = True,
    ) -> None:
        super().__init__(cache=cache)
        if serving.endpoint is None:
            raise ValueError("OpenAIBackend needs serving.endpoint, the server's /v1 base URL")
        self.engine = engine
        self.client = OpenAIClient(
            serving.endpoint,
            model=engine.model,
            adapter=engine.adapter,
            api_key=serving.api_key,
            sampling=sampling,
            structured_outputs=engine.structured_outputs,
            policy=serving.policy,
            progress=progress,
            trust_env=trust_env,
        )

    @property
    def base_url(self) -> str:
        return self.client.base_url

    @property
    def info(self) -> ServerInfo | None:
        return self.client.info

    def connect(self) -> ServerInfo:
        """Wait for the server and pick the model (and adapter) the requests name."""
        return self.client.connect()

    def cache_identity(self) -> dict[str, Any]:
        return {"backend": self.name, **self.client.identity()}

    def meta(self) -> dict[str, Any]:
        """Never contacts the server: what is known so far."""
        info = self.client.info
        return {
            **self.client.meta(),
            "backend": self.name,
            "model": self.engine.model or (info.model["id"] if info else None),
            "adapter": self.engine.adapter,
            "servers_started": self.stats.servers_started,
            "retries": self.stats.retries,
            "failed_requests": self.stats.failed,
            "request_failures": [f.to_dict() for f in self.failures.values()],
        }

    def _generate(
        self,
        tasks: Sequence[Task],
        *,
        store: Callable[[Generation], None] | None,
        on_phase: Callable[[str], None] | None,
    ) -> Iterable[Generation | TaskFailure]:
        batch = self.client.send(tasks, store)
        self.stats.retries += batch.retries
        self.stats.add_time("generation", batch.seconds)
        if on_phase:
            on_phase(_phase_line(batch, len(tasks), self.client.base_url))
        return batch.outcomes


class VllmServeBackend(Backend):
    """``--serve``: the session's own vLLM server, driven through an ``OpenAIClient``.

    The server gets the engine arguments the in-process engine would get (``request``), as
    flags, plus ``serving.serve_args`` (appended last, so they win); requests get the same
    sampling. The server starts on the first cache miss, so a run served from the cache starts
    none; ``close`` stops it. ``log_dir`` receives ``vllm-server.log``; the server spreads over
    the visible GPUs (see ``VllmServer``); ``serving.policy.concurrency`` defaults to
    ``DEFAULT_CONCURRENCY`` per data-parallel replica. ``model_path``: as ``VllmBackend``'s."""

    name = "vllm-serve"

    def __init__(
        self,
        engine: Engine,
        sampling: Sampling,
        serving: Serving,
        *,
        log_dir: Path,
        model_path: str | None = None,
        cache: GenerationCache | None = None,
        progress: bool | Callable[..., Any] = True,
        max_lora_rank: int | None = None,
        lora_modules: Mapping[str, str] | None = None,
        module: str | None = None,
        lead: VllmServeBackend | None = None,
    ) -> None:
        super().__init__(cache=cache)
        if engine.model is None:
            raise ValueError("the session's server needs a model")
        self.engine = engine
        self.sampling = sampling
        self.policy = serving.policy
        self.progress = progress
        self.model_path = model_path if model_path is not None else resolve_model(engine.model)
        adapter = (
            validate_adapter(
                engine.adapter, max_lora_rank=max_lora_rank or request.requested_lora_rank(engine)
            )
            if engine.adapter
            else None
        )
        self.adapter_path = adapter.path if adapter else None
        # A sweep's adapters on one server: every one is a LoRA module (``lora_modules``, module
        # name -> path) and ``lead`` (the first adapter's backend) starts the server; this
        # backend's requests name ``module``.
        self.module = module or (ADAPTER_MODULE if self.adapter_path else None)
        modules = lora_modules if lora_modules is not None else self.adapter_path
        self._lead = lead
        self.engine_args = request.engine_args(
            engine,
            sampling,
            model_path=self.model_path,
            max_lora_rank=adapter.max_lora_rank if adapter else None,
            max_loras=len(lora_modules) if lora_modules else 1,
            cpu=platform_is_cpu(),
        )
        self.served_model_name = engine.model
        self.server = VllmServer(
            request.served_engine_args(self.engine_args, modules),
            log_dir=log_dir,
            server_args=serving.serve_args,
            served_model_name=self.served_model_name,
        )
        self.client: OpenAIClient | None = None
        self._identity: dict[str, Any] | None = None

    def cache_identity(self) -> dict[str, Any]:
        """The in-process engine's identity (model fingerprint, adapter, chat template,
        sampling, engine arguments, vLLM version: this installation's, which the server runs)
        plus the served name and the extra server arguments. Known without starting the
        server."""
        if self._identity is None:
            self._identity = request.engine_identity(
                self.name,
                self.engine,
                self.sampling,
                model_path=self.model_path,
                adapter_path=self.adapter_path,
                args=self.engine_args,
                vllm_version=library_versions()["vllm"],
            )
        return {
            **self._identity,
            "engine_args": request.identity_args(self.engine_args),
            "served_model_name": self.served_model_name,
            "server_args": list(self.server.server_args),
        }

    @property
    def lead(self) -> VllmServeBackend:
        return self._lead if self._lead is not None else self

    def _client_for(self, server: VllmServer, module: str | None) -> OpenAIClient:
        return OpenAIClient(
            server.url,
            model=self.served_model_name,
            adapter=module,
            api_key=server.api_key,
            sampling=self.sampling,
            structured_outputs=self.engine.structured_outputs,
            policy=replace(
                self.policy,
                concurrency=self.policy.concurrency or DEFAULT_CONCURRENCY * server.replicas(),
            ),
            progress=self.progress,
            trust_env=False,  # a loopback server: no proxy may stand in between
        )

    def _start(self, on_phase: Callable[[str], None] | None) -> OpenAIClient:
        if self.client is not None and self.server.process is not None:
            if self.server.exit_code() is None:
                return self.client
            self.server.stop()  # it died since the last batch: reap it, start another
        started = time.perf_counter()
        self.server.start()
        self.stats.servers_started += 1
        try:
            client = self._client_for(self.server, self.module)
            client.connect()
        except BaseException:
            self.server.stop()
            raise
        local = library_versions()["vllm"]
        if client.info and client.info.version and local and client.info.version != local:
            warnings.warn(
                f"the vLLM server reports version {client.info.version}, this installation "
                f"{local}; cache entries are keyed by {local}",
                stacklevel=2,
            )
        self.client = client
        seconds = time.perf_counter() - started
        self.stats.add_time("server_start", seconds)
        if on_phase:
            on_phase(
                f"vLLM server ready at {self.server.url} in {seconds:.1f} s "
                f"(log: {self.server.log_path})"
            )
        return client

    def _generate_requests(
        self,
        requests: Sequence[tuple[Backend, Task]],
        *,
        stores: Sequence[Callable[[Generation], None] | None],
        on_phase: Callable[[str], None] | None,
    ) -> list[Generation | TaskFailure | None]:
        """The backends this one leads, one after another through its server (each send
        keeps the server's batch full on its own)."""
        if all(backend is self for backend, _ in requests):
            return super()._generate_requests(requests, stores=stores, on_phase=on_phase)
        self._start(on_phase)
        outcomes: list[Generation | TaskFailure | None] = [None] * len(requests)
        for backend in dict.fromkeys(backend for backend, _ in requests):
            if not isinstance(backend, VllmServeBackend) or backend.lead is not self:
                raise ValueError("a VllmServeBackend generates for the backends it leads only")
            if backend is not self:
                backend.client = backend.client or self._client_for(self.server, backend.module)
            mine = [i for i, (b, _) in enumerate(requests) if b is backend]
            found = backend._send([requests[i][1] for i in mine], [stores[i] for i in mine])
            for i in mine:
                outcomes[i] = found.get(requests[i][1].task_id)
        return outcomes

    def _send(
        self, tasks: Sequence[Task], stores: Sequence[Callable[[Generation], None] | None]
    ) -> dict[str, Generation | TaskFailure]:
        keep = {task.task_id: store for task, store in zip(tasks, stores, strict=True)}

        def store(generation: Generation) -> None:
            put = keep[generation.task_id]
            if put is not None:
                put(generation)

        assert self.client is not None
        return {o.task_id: o for o in self._sent(self.client, tasks, store, None)}

    def _generate(
        self,
        tasks: Sequence[Task],
        *,
        store: Callable[[Generation], None] | None,
        on_phase: Callable[[str], None] | None,
    ) -> Iterable[Generation | TaskFailure]:
        return self._sent(self._start(on_phase), tasks, store, on_phase)

    def _sent(
        self,
        client: OpenAIClient,
        tasks: Sequence[Task],
        store: Callable[[Generation], None] | None,
        on_phase: Callable[[str], None] | None,
    ) -> list[Generation | TaskFailure]:
        batch = client.send(tasks, store)
        self.stats.retries += batch.retries
        self.stats.add_time("generation", batch.seconds)
        if on_phase:
            on_phase(_phase_line(batch, len(tasks), client.base_url))
        outcomes = batch.outcomes
        server = self.lead.server
        code = server.exit_code()
        if code is not None:
            # The requests failed because the server died: say so, with where to look.
            note = f" (the vLLM server exited with code {code}; see {server.log_path})"
            outcomes = [
                replace(o, cause=o.cause + note) if isinstance(o, TaskFailure) else o
                for o in outcomes
            ]
        return outcomes

    def meta(self) -> dict[str, Any]:
        identity = self.cache_identity()
        client = (
            self.client.meta()
            if self.client is not None
            else {
                "endpoint": None,
                "sampling_params": request.request_sampling(self.sampling),
                "structured_outputs": request.structured_outputs_meta(
                    self.engine.structured_outputs
                ),
            }
        )
        return {
            **client,
            "backend": self.name,
            "model": self.engine.model,
            "model_path": self.model_path,
            "model_identity": identity["model"],
            "adapter": self.engine.adapter,
            "served_model_name": self.served_model_name,
            **library_versions(),
            "engine_args": self.engine_args,
            "server_args": self.server.server_args,
            "server": self.server.meta() if self.server.command else None,
            "chat_template_sha256": identity["chat_template_sha256"],
            "servers_started": self.stats.servers_started,
            "retries": self.stats.retries,
            "failed_requests": self.stats.failed,
            "request_failures": [f.to_dict() for f in self.failures.values()],
        }

    def close(self, *, grace: float | None = None) -> None:
        """Stop the server (its own bounded stop; ``grace`` is for in-process engines); ``meta``
        still reports it, and a later miss starts a new one. A run that shares another's server
        (a sweep) leaves it to that one."""
        if self._lead is None:
            self.server.stop()
