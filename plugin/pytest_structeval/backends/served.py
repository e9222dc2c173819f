"""Generations from a vLLM OpenAI-compatible server.

* ``OpenAIBackend`` (``--endpoint``; ``meta.backend = "openai"``): a server that is already
  running, given by its ``/v1`` base URL.
* ``VllmServeBackend`` (``--serve``; ``"vllm-serve"``): starts its own server
  (``server.VllmServer``) on the first cache miss, with the engine arguments the offline backend
  would use (``request.engine_args``), drives it through an ``OpenAIClient`` and stops it on
  ``close``.

Both talk to the server through ``openai_client.OpenAIClient`` (connection, health, requests,
retries), which each owns; the rest of this docstring describes what that client sends.

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

import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..models import resolve_model
from ..settings import Engine, Sampling, Serving
from ..tasks import Task
from . import request
from .adapter import validate_adapter
from .base import Backend, Generation, TaskFailure
from .cache import GenerationCache
from .openai_client import (
    DEFAULT_CONCURRENCY,
    OpenAIClient,
    ServerInfo,
    phase_line,
)
from .platform import library_versions, platform_is_cpu
from .request import ADAPTER_MODULE
from .server import VllmServer


class OpenAIBackend(Backend):
    """``--endpoint``: sends every cache miss to a running vLLM server (see the module
    docstring). ``engine`` gives the served model name (None: the one served), the adapter (a
    LoRA module the server serves, ``--lora-modules NAME=PATH``; requests then ask for it) and
    structured outputs; ``serving`` the endpoint, key and request policy; ``cpu_server``: the
    server runs vLLM's CPU build (one this process started on a CPU machine; an endpoint's
    platform is not known)."""

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
        cpu_server: bool = False,
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
            cpu_server=cpu_server,
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
            on_phase(phase_line(batch, len(tasks), self.client.base_url))
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
        self.cpu = platform_is_cpu()  # the session's server runs on this machine's vLLM
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
            cpu=self.cpu,
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
                cpu=self.cpu,
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
            gone=lambda: server.exit_code() is not None,
            cpu_server=self.cpu,
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
            on_phase(phase_line(batch, len(tasks), client.base_url))
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
                "sampling_params": request.request_sampling(self.sampling, cpu=self.cpu),
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
