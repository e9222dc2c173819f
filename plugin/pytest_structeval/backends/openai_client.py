"""The HTTP side of a vLLM OpenAI-compatible server: connect, check health, choose the served
model, send every task as one chat completion with bounded concurrency, retries and timeouts.

``OpenAIClient`` is a plain helper, not a ``Backend``: the served backends (``served.py``) each
own one and add its ``Batch`` (outcomes, retries, seconds) to their own counters. Each task is
one chat completion holding the offline engine's prompt and sampling (``request.chat_body``),
with the sampling fields the server would otherwise take from the model's
``generation_config.json`` pinned to vLLM's neutral values (``request.NEUTRAL_SAMPLING``). Up to
``concurrency`` requests are in flight, so vLLM's continuous batching stays full; each answer
goes to the cache the moment it arrives. Connection errors, 429 and 5xx are retried with
exponential backoff (bounded attempts, ``Retry-After`` honoured); a request that still fails,
times out or gets a malformed answer becomes a ``TaskFailure`` for its task alone.

``httpx`` is imported where requests are made, so scoring, replay and the offline engine do not
need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..settings import RequestPolicy, Sampling
from ..tasks import Task
from . import request
from .base import Generation, TaskFailure

if TYPE_CHECKING:
    import httpx  # lazy: the [served] extra; only requests need it


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
    (off for the session's own loopback server). ``gone``: for a server this process started,
    True once it has exited; from then on no request is sent or retried, so the tasks left
    fail at once instead of each retrying against a dead port. ``cpu_server``: the server runs
    vLLM's CPU build (the session's own server on a CPU machine), which takes no per-request
    seed (``request.sampling_params``)."""

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
        gone: Callable[[], bool] | None = None,
        cpu_server: bool = False,
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
        self.gone = gone
        self.cpu_server = cpu_server
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
        import httpx  # lazy: the [served] extra; only requests need it

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
            "sampling_params": request.request_sampling(self.sampling, cpu=self.cpu_server),
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
            "sampling_params": request.request_sampling(self.sampling, cpu=self.cpu_server),
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
        import httpx  # lazy: the [served] extra; only requests need it

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
        import httpx  # lazy: the [served] extra; only requests need it

        policy = self.policy
        body = request.chat_body(
            task,
            model_field,
            self.sampling,
            structured_outputs=self.structured_outputs,
            cpu=self.cpu_server,
        )
        for attempt in range(1, policy.max_attempts + 1):
            if self._server_gone():
                return TaskFailure(task.task_id, "not sent: the server had exited", attempt - 1)
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
            if attempt == policy.max_attempts or self._server_gone():
                return TaskFailure(task.task_id, cause, attempt)
            self._retries += 1
            await asyncio.sleep(self._backoff(attempt, wait))
        raise AssertionError("unreachable: the last attempt returns")

    def _server_gone(self) -> bool:
        return self.gone is not None and self.gone()

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        policy = self.policy
        delay = min(policy.max_backoff, policy.retry_backoff * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.0)  # jitter
        if retry_after is not None:
            delay = max(delay, min(retry_after, policy.max_backoff))
        return delay


def _httpx_version() -> str | None:
    try:
        import httpx  # lazy: the [served] extra; only requests need it
    except ImportError:
        return None
    return httpx.__version__


def phase_line(batch: Batch, count: int, url: str) -> str:
    failed = sum(isinstance(o, TaskFailure) for o in batch.outcomes)
    return (
        f"{count} requests to {url} in {batch.seconds:.1f} s "
        f"({batch.retries} retries, {failed} failed)"
    )
