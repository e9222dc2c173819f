"""Generations from a vLLM OpenAI-compatible server.

* ``OpenAIBackend`` (``--endpoint``; ``meta.backend = "openai"``): a server that is already
  running, given by its ``/v1`` base URL.
* ``VllmServeBackend`` (``--serve``; ``"vllm-serve"``): starts its own server
  (``server.VllmServer``) on the first cache miss, with the engine arguments the offline backend
  would use, drives it through an ``OpenAIBackend`` and stops it on ``close``.

Each task is one chat completion holding the offline engine's prompt (one user message with the
raw query) and sampling (``temperature``, ``max_tokens``, ``seed`` as ``VllmBackend`` sets them),
plus the sampling fields the server would otherwise take from the model's
``generation_config.json`` pinned to vLLM's neutral values, as the offline engine's explicit
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
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..tasks import Task
from .base import Backend, Generation, TaskFailure
from .platform import library_versions
from .server import VllmServer
from .vllm_offline import (
    VllmBackend,
    VllmConfig,
    finish_reason_of,
    sampling_params,
    structured_outputs_meta,
    structured_outputs_spec,
)

if TYPE_CHECKING:
    import httpx

    from ..cache import GenerationCache

# Requests in flight per engine replica: vLLM's largest default max_num_seqs (1024 on 70 GiB+
# GPUs; 256 on smaller ones, 128 for the CPU server), so a default-configured server never runs
# a batch short of requests, and the queue it holds beyond that stays a few batches deep.
DEFAULT_CONCURRENCY = 1024
# Read when no key is given: the variable vLLM's own server reads for its --api-key, so one
# setting serves both. Not OPENAI_API_KEY: that key is for api.openai.com and must not be sent
# to whatever server --endpoint names.
API_KEY_ENV = "VLLM_API_KEY"
# The server fills these from generation_config.json when a request leaves them out
# (ChatCompletionRequest._DEFAULT_SAMPLING_PARAMS, ModelConfig.get_diff_sampling_param); the
# offline engine gets explicit SamplingParams and never applies those defaults. So each request
# pins them to SamplingParams' own defaults: same sampling as offline.
NEUTRAL_SAMPLING: dict[str, float | int] = {
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
CONNECT_TIMEOUT = 30.0
# Connections per httpx client (see OpenAIBackend._send_all).
POOL_SIZE = 32
# The name the session's own server gives the adapter (as the offline engine's LoRARequest).
ADAPTER_MODULE = "adapter"


class EndpointError(RuntimeError):
    """The server cannot be used at all (no healthy /health in time, key refused, model or
    adapter not served); the message names the URL. Per-task problems are ``TaskFailure``s."""


@dataclass(frozen=True)
class RequestPolicy:
    """How requests are sent.

    * ``concurrency``: requests in flight; None: ``DEFAULT_CONCURRENCY`` per engine replica.
    * ``request_timeout``: seconds one request may take, from sending to the whole answer
      (queueing in the server included); a request that takes longer fails its task, unretried.
    * ``max_attempts``: requests per task (first one included) on connection errors, 429, 5xx.
    * ``retry_backoff``: the first wait between attempts, doubled each time up to
      ``max_backoff``, with jitter (so a thousand retries do not arrive at once).
    * ``health_timeout``: how long to wait for the server's ``/health``."""

    concurrency: int | None = None
    request_timeout: float = 600.0
    max_attempts: int = 5
    retry_backoff: float = 1.0
    max_backoff: float = 30.0
    health_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.concurrency is not None and self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.request_timeout <= 0:
            raise ValueError(f"request_timeout must be positive, not {self.request_timeout}")


@dataclass(frozen=True)
class ServedConfig:
    """Settings of ``OpenAIBackend``, as plain values (pytest-xdist pickles them).

    ``endpoint`` is the server's OpenAI base URL (``http://host:8000/v1``; a URL without the
    ``/v1`` gets it). ``model`` is the served model name (the server's ``--served-model-name``,
    by default its model path); None: the one model the server serves. ``adapter`` names a LoRA
    module the server serves (``--lora-modules NAME=PATH``); requests then ask for it.
    ``api_key`` None: ``$VLLM_API_KEY``, else no key. Sampling defaults are ``VllmConfig``'s."""

    endpoint: str
    model: str | None = None
    adapter: str | None = None
    api_key: str | None = field(default=None, repr=False)
    max_tokens: int = 4096
    temperature: float = 0.0
    seed: int = 0
    structured_outputs: bool = False
    policy: RequestPolicy = field(default_factory=RequestPolicy)


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
    return Generation(task_id, content, finish_reason_of(choice.get("finish_reason")))  # type: ignore[arg-type]


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


class OpenAIBackend(Backend):
    """Sends every cache miss to a running vLLM server (see the module docstring).

    ``progress``: True for a tqdm bar (when tqdm is installed), a tqdm-like factory, or False.
    ``trust_env``: let httpx read proxy and certificate settings from the environment (off for
    the session's own loopback server)."""

    name = "openai"

    def __init__(
        self,
        config: ServedConfig,
        *,
        cache: GenerationCache | None = None,
        progress: bool | Callable[..., Any] = True,
        trust_env: bool = True,
    ) -> None:
        super().__init__(cache=cache)
        self.config = config
        self.base_url = api_base(config.endpoint)
        self.root_url = self.base_url[: -len("/v1")]
        self.api_key = (
            config.api_key if config.api_key is not None else os.environ.get(API_KEY_ENV) or None
        )
        self.progress = progress
        self.trust_env = trust_env
        self.sampling_params = sampling_params(
            temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed
        )
        self.concurrency = config.policy.concurrency or DEFAULT_CONCURRENCY
        self.info: ServerInfo | None = None

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
                where = "--api-key" if self.config.api_key is not None else f"${API_KEY_ENV}"
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

        deadline = time.monotonic() + self.config.policy.health_timeout
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
                    f"within {self.config.policy.health_timeout:g} s (last: {last})"
                )
            time.sleep(1.0)

    def _choose(self, cards: dict[str, dict[str, Any]], version: str | None) -> ServerInfo:
        served = tuple(sorted(cards))
        adapter = cards.get(self.config.adapter) if self.config.adapter else None
        if self.config.adapter and adapter is None:
            raise EndpointError(
                f"{self.base_url} serves no LoRA module {self.config.adapter!r} (it serves "
                f"{', '.join(served)}); start it with --enable-lora "
                f"--lora-modules {self.config.adapter}=PATH"
            )
        name = self.config.model or (adapter or {}).get("parent")
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

    def request_sampling(self) -> dict[str, object]:
        return {**NEUTRAL_SAMPLING, **self.sampling_params}

    def cache_identity(self) -> dict[str, Any]:
        """What the server says it serves (model card, adapter card, vLLM version) and what we
        ask of it; not the URL, so a server moved to another port keeps its cache."""
        info = self.connect()
        return {
            "backend": self.name,
            "served_model": info.model,
            "adapter": info.adapter,
            "vllm": info.version,
            "sampling_params": self.request_sampling(),
            "structured_outputs": self.config.structured_outputs,
        }

    def meta(self) -> dict[str, Any]:
        """Never contacts the server: what is known so far."""
        info = self.info
        policy = self.config.policy
        return {
            "backend": self.name,
            "model": self.config.model or (info.model["id"] if info else None),
            "adapter": self.config.adapter,
            "endpoint": self.base_url,
            "served_model": info.model if info else None,
            "served_adapter": info.adapter if info else None,
            "server_vllm": info.version if info else None,
            "sampling_params": self.request_sampling(),
            "structured_outputs": structured_outputs_meta(self.config.structured_outputs),
            "concurrency": self.concurrency,
            "request_timeout": policy.request_timeout,
            "max_attempts": policy.max_attempts,
            "servers_started": self.stats.servers_started,
            "retries": self.stats.retries,
            "failed_requests": self.stats.failed,
            "request_failures": [f.to_dict() for f in self.failures.values()],
            "http_client": f"httpx {_httpx_version()}",
        }

    # -- generation -----------------------------------------------------------------------

    def _generate(
        self,
        tasks: Sequence[Task],
        *,
        store: Callable[[Generation], None] | None,
        on_phase: Callable[[str], None] | None,
    ) -> Iterable[Generation | TaskFailure]:
        info = self.connect()
        model_field = (info.adapter or info.model)["id"]
        started = time.perf_counter()
        retries_before, bar = self.stats.retries, _progress_bar(self.progress, len(tasks))
        try:
            outcomes = asyncio.run(self._send_all(tasks, model_field, store, bar))
        finally:
            if bar is not None:
                bar.close()
        seconds = time.perf_counter() - started
        self.stats.add_time("generation", seconds)
        if on_phase:
            failed = sum(isinstance(o, TaskFailure) for o in outcomes)
            on_phase(
                f"{len(tasks)} requests to {self.base_url} in {seconds:.1f} s "
                f"({self.stats.retries - retries_before} retries, {failed} failed)"
            )
        return outcomes

    def _body(self, task: Task, model_field: str) -> dict[str, object]:
        body: dict[str, object] = {
            "model": model_field,
            "messages": task.chat_messages(),
            **self.request_sampling(),
            "n": 1,
            "stream": False,
        }
        if self.config.structured_outputs:
            spec = structured_outputs_spec(task.output_type)
            if spec is not None:
                body["structured_outputs"] = spec
        return body

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

        policy = self.config.policy
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

        policy = self.config.policy
        body = self._body(task, model_field)
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
            self.stats.retries += 1
            await asyncio.sleep(self._backoff(attempt, wait))
        raise AssertionError("unreachable: the last attempt returns")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        policy = self.config.policy
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


class VllmServeBackend(Backend):
    """``--serve``: the session's own vLLM server, driven like ``--endpoint``.

    ``config`` is the offline backend's (``VllmConfig``): the server gets exactly the engine
    arguments ``VllmBackend`` would pass to ``vllm.LLM`` (a ``VllmBackend`` is built for that
    and never started), requests get its sampling. The server starts on the first cache miss, so
    a run served from the cache starts none; ``close`` stops it. ``server_args`` are extra
    server flags (appended last, so they win); ``log_dir`` receives ``vllm-server.log``; the
    server spreads over the visible GPUs (see ``VllmServer``); ``policy.concurrency`` defaults
    to ``DEFAULT_CONCURRENCY`` per data-parallel replica."""

    name = "vllm-serve"

    def __init__(
        self,
        config: VllmConfig,
        *,
        log_dir: Path,
        server_args: Sequence[str] = (),
        policy: RequestPolicy | None = None,
        cache: GenerationCache | None = None,
        progress: bool | Callable[..., Any] = True,
    ) -> None:
        super().__init__(cache=cache)
        self.config = config
        self.offline = VllmBackend(config)  # never started: see the class docstring
        self.served_model_name = config.model_name or config.model
        engine_args = dict(self.offline.engine_args)
        if self.offline.adapter is not None:
            engine_args["lora_modules"] = [f"{ADAPTER_MODULE}={self.offline.adapter.path}"]
        self.server = VllmServer(
            engine_args,
            log_dir=log_dir,
            server_args=server_args,
            served_model_name=self.served_model_name,
        )
        self.policy = policy or RequestPolicy()
        self.progress = progress
        self.client: OpenAIBackend | None = None

    def cache_identity(self) -> dict[str, Any]:
        """The offline identity (model fingerprint, adapter, chat template, sampling, engine
        arguments, vLLM version: this installation's, which the server runs) plus the served
        name and the extra server arguments. Known without starting the server."""
        return {
            **self.offline.cache_identity(),
            "backend": self.name,
            "served_model_name": self.served_model_name,
            "server_args": list(self.server.server_args),
        }

    def _start(self, on_phase: Callable[[str], None] | None) -> OpenAIBackend:
        if self.client is not None and self.server.process is not None:
            if self.server.exit_code() is None:
                return self.client
            self.server.stop()  # it died since the last batch: reap it, start another
        started = time.perf_counter()
        self.server.start()
        self.stats.servers_started += 1
        try:
            client = OpenAIBackend(
                ServedConfig(
                    endpoint=self.server.url,
                    model=self.served_model_name,
                    adapter=ADAPTER_MODULE if self.offline.adapter else None,
                    api_key=self.server.api_key,
                    max_tokens=self.config.max_tokens,
                    temperature=self.config.temperature,
                    seed=self.config.seed,
                    structured_outputs=self.config.structured_outputs,
                    policy=replace(
                        self.policy,
                        concurrency=self.policy.concurrency
                        or DEFAULT_CONCURRENCY * self.server.replicas(),
                    ),
                ),
                progress=self.progress,
                trust_env=False,  # a loopback server: no proxy may stand in between
            )
            client.stats = self.stats  # one set of counters: retries land in this backend's
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

    def _generate(
        self,
        tasks: Sequence[Task],
        *,
        store: Callable[[Generation], None] | None,
        on_phase: Callable[[str], None] | None,
    ) -> Iterable[Generation | TaskFailure]:
        outcomes = list(self._start(on_phase)._generate(tasks, store=store, on_phase=on_phase))
        code = self.server.exit_code()
        if code is not None:
            # The requests failed because the server died: say so, with where to look.
            note = f" (the vLLM server exited with code {code}; see {self.server.log_path})"
            outcomes = [
                replace(o, cause=o.cause + note) if isinstance(o, TaskFailure) else o
                for o in outcomes
            ]
        return outcomes

    def meta(self) -> dict[str, Any]:
        offline = self.offline.meta()
        client = (
            self.client.meta()
            if self.client is not None
            else {
                "endpoint": None,
                "sampling_params": {**NEUTRAL_SAMPLING, **offline["sampling_params"]},
            }
        )
        return {
            **client,
            "backend": self.name,
            "model": offline["model"],
            "model_path": offline["model_path"],
            "model_identity": offline["model_identity"],
            "adapter": self.config.adapter,
            "served_model_name": self.served_model_name,
            **library_versions(),
            "engine_args": offline["engine_args"],
            "server_args": self.server.server_args,
            "server": self.server.meta() if self.server.command else None,
            "chat_template_sha256": offline["chat_template_sha256"],
            "servers_started": self.stats.servers_started,
            "retries": self.stats.retries,
            "failed_requests": self.stats.failed,
            "request_failures": [f.to_dict() for f in self.failures.values()],
        }

    def close(self) -> None:
        """Stop the server; ``meta`` still reports it, and a later miss starts a new one."""
        self.server.stop()
