"""The in-process vLLM backend: one engine per session, every prompt in one batch, cached.

``vllm`` (and with it torch) is imported lazily, inside the functions that drive an engine:
importing it costs seconds and initialises the accelerator platform, and scoring, replay and a
run served entirely from the generation cache must work without it (or without it installed).

``VllmBackend`` is the ``Backend`` hook: it starts the engine (``engine.start_engine``, with its
fallback ladder) only when the cache misses, makes one ``LLM.chat`` call for all misses and
stores each generation the moment it finishes.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..models import resolve_model
from ..settings import Engine, Sampling
from ..tasks import Task
from . import request
from .adapter import validate_adapter
from .base import Backend, Generation
from .cache import GenerationCache
from .engine import RungFailure, VllmEngine, default_ladder, start_engine, validate_engine_args
from .platform import library_versions, platform_is_cpu


class VllmBackend(Backend):
    """Generates with ``vllm.LLM.chat``: one engine per session, all misses in one batch.

    ``engine`` and ``sampling`` are the settings' sections; ``model_path`` the model resolved
    to what vLLM loads (None: ``models.resolve_model(engine.model)``). What vLLM is given comes
    from ``request``.

    ``progress`` goes to ``LLM.chat(use_tqdm=...)``: True for vLLM's own bar, or a tqdm
    factory (e.g. ``functools.partial(tqdm, file=...)``) to route it past pytest's capture.
    ``ladder`` overrides the fallback rungs (tests; None: ``default_ladder``)."""

    name = "vllm"

    def __init__(
        self,
        engine: Engine,
        sampling: Sampling,
        *,
        model_path: str | None = None,
        cache: GenerationCache | None = None,
        progress: bool | Callable[..., Any] = True,
        ladder: Sequence[Mapping[str, object]] | None = None,
        max_lora_rank: int | None = None,
        max_loras: int = 1,
        lead: VllmBackend | None = None,
    ) -> None:
        super().__init__(cache=cache)
        if engine.model is None:
            raise ValueError("the in-process engine needs a model")
        self.engine = engine
        self.sampling = sampling
        self.cpu = platform_is_cpu()
        self.progress = progress
        self.model_path = model_path if model_path is not None else resolve_model(engine.model)
        self.adapter = (
            validate_adapter(
                engine.adapter, max_lora_rank=max_lora_rank or request.requested_lora_rank(engine)
            )
            if engine.adapter
            else None
        )
        self.engine_args = request.engine_args(
            engine,
            sampling,
            model_path=self.model_path,
            max_lora_rank=self.adapter.max_lora_rank if self.adapter else None,
            max_loras=max_loras,
            cpu=self.cpu,
        )
        # A sweep's adapters on one engine: ``lead`` (the first adapter's backend) starts it
        # and generates every adapter's misses in one batch (``base.generate_runs``).
        self._lead = lead
        self.sampling_params = request.sampling_params(sampling, cpu=self.cpu)
        self.ladder = (
            list(ladder)
            if ladder is not None
            else default_ladder(
                int(self.engine_args.get("max_model_len") or engine.max_model_len),
                engine.gpu_memory_utilization,
            )
        )
        self.attempts: list[RungFailure] = []
        self.used_engine_args: dict[str, object] | None = None
        self._identity: dict[str, Any] | None = None
        self._running: VllmEngine | None = None
        self._stack: contextlib.ExitStack | None = None

    # -- identity and provenance ----------------------------------------------------------

    def _identity_for(self, engine_args: Mapping[str, object]) -> dict[str, Any]:
        if self._identity is None:
            self._identity = request.engine_identity(
                self.name,
                self.engine,
                self.sampling,
                model_path=self.model_path,
                adapter_path=self.adapter.path if self.adapter else None,
                args=self.engine_args,
                vllm_version=library_versions()["vllm"],
                cpu=self.cpu,
            )
        return {**self._identity, "engine_args": request.identity_args(engine_args)}

    def cache_identity(self) -> dict[str, Any]:
        return self._identity_for(self.engine_args)

    def meta(self) -> dict[str, Any]:
        identity = self.cache_identity()
        return {
            "backend": self.name,
            "model": self.engine.model,
            "model_path": self.model_path,
            "model_identity": identity["model"],
            "adapter": self.engine.adapter,
            **library_versions(),
            # Exactly what vllm.LLM received (after any fallback rung), or, when every
            # generation came from the cache, what it would have received.
            "engine_args": self.used_engine_args or self.engine_args,
            "engine_built": self.used_engine_args is not None,
            "engine_attempts": [
                {"overrides": f.overrides, "cause": f.cause} for f in self.attempts
            ],
            "sampling_params": self.sampling_params,
            "structured_outputs": request.structured_outputs_meta(self.engine.structured_outputs),
            "chat_template_sha256": identity["chat_template_sha256"],
        }

    # -- generation -----------------------------------------------------------------------

    @property
    def lead(self) -> VllmBackend:
        return self._lead if self._lead is not None else self

    def _start(self, on_phase: Callable[[str], None] | None) -> VllmEngine:
        if self._running is not None:
            return self._running
        validate_engine_args(self.engine.vllm_args)
        started = time.perf_counter()
        stack = contextlib.ExitStack()
        engine = stack.enter_context(
            start_engine(self.engine_args, self.ladder, attempts=self.attempts)
        )
        self._stack, self._running = stack, engine
        self.used_engine_args = dict(engine.kwargs)
        self.stats.engine_builds += 1
        seconds = time.perf_counter() - started
        self.stats.add_time("engine_start", seconds)
        if on_phase:
            on_phase(f"engine start {seconds:.1f} s")
        return engine

    def _generate(
        self,
        tasks: Sequence[Task],
        *,
        store: Callable[[Generation], None] | None,
        on_phase: Callable[[str], None] | None,
    ) -> Iterable[Generation]:
        return self._generate_requests(
            [(self, task) for task in tasks], stores=[store] * len(tasks), on_phase=on_phase
        )

    def _generate_requests(
        self,
        requests: Sequence[tuple[Backend, Task]],
        *,
        stores: Sequence[Callable[[Generation], None] | None],
        on_phase: Callable[[str], None] | None,
    ) -> list[Generation]:
        """One ``LLM.chat`` for every request, each with its backend's adapter (a LoRA request
        per conversation) and stored under its backend's identity."""
        from vllm import SamplingParams  # lazy: see the module docstring

        backends = [backend for backend, _ in requests]
        tasks = [task for _, task in requests]
        if not all(isinstance(b, VllmBackend) and b.lead is self for b in backends):
            raise ValueError("a VllmBackend generates for the backends it leads only")
        engine = self._start(on_phase)
        llm = engine.llm
        stores = list(stores)
        for i, (backend, task) in enumerate(requests):
            assert isinstance(backend, VllmBackend)
            used = backend._identity_for(engine.requested)
            if backend.cache is not None and stores[i] is not None:
                if used != backend.cache_identity():
                    # A fallback rung changed an output-relevant argument (max_model_len): key
                    # these generations by what actually produced them, not by what was asked.
                    stores[i] = functools.partial(backend.cache.put, used, task)
        if self.engine.structured_outputs:
            from vllm.sampling_params import StructuredOutputsParams  # lazy: vLLM

            sampling: Any = [
                SamplingParams(
                    **self.sampling_params,
                    **(
                        {"structured_outputs": StructuredOutputsParams(**spec)}
                        if (spec := request.structured_outputs_spec(task.output_type))
                        else {}
                    ),
                )
                for task in tasks
            ]
        else:
            sampling = SamplingParams(**self.sampling_params)
        lora: Any = None
        paths = [b.adapter.path if b.adapter else None for b in backends]  # type: ignore[attr-defined]
        if any(paths):
            from vllm.lora.request import LoRARequest  # lazy: vLLM

            ids = {p: n + 1 for n, p in enumerate(dict.fromkeys(p for p in paths if p))}
            made = {
                p: LoRARequest(
                    lora_name="adapter" if i == 1 else f"adapter{i}", lora_int_id=i, lora_path=p
                )
                for p, i in ids.items()
            }
            per_request = [made[p] if p else None for p in paths]
            lora = per_request[0] if len(ids) == 1 and all(paths) else per_request

        stored: set[int] = set()
        first_id = int(getattr(llm.request_counter, "counter", 0))

        def persist(index: int, output: Any) -> Generation:
            prompt = getattr(output, "prompt_token_ids", None)
            generation = Generation(
                tasks[index].task_id,
                output.outputs[0].text,
                request.finish_reason_of(output.outputs[0].finish_reason),
                prompt_tokens=len(prompt) if prompt is not None else None,
            )
            keep = stores[index]
            if keep is not None and index not in stored:
                keep(generation)
                stored.add(index)
            return generation

        started = time.perf_counter()
        with _tap_finished(llm, lambda out: _on_finished(out, first_id, len(tasks), persist)):
            outputs = llm.chat(
                messages=[request.messages(task) for task in tasks],
                sampling_params=sampling,
                use_tqdm=self.progress,
                lora_request=lora,
                add_generation_prompt=True,
            )
        seconds = time.perf_counter() - started
        self.stats.add_time("generation", seconds)
        if on_phase:
            on_phase(f"generation {len(tasks)} prompts {seconds:.1f} s")
        return [persist(i, output) for i, output in enumerate(outputs)]

    def close(self, *, grace: float | None = None) -> None:
        stack, running = self._stack, self._running
        self._stack, self._running = None, None
        if running is not None:
            running.shutdown_grace = grace
        if stack is not None:
            stack.close()


def _on_finished(
    output: Any, first_id: int, count: int, persist: Callable[[int, Any], Generation]
) -> None:
    try:
        index = int(output.request_id) - first_id
    except (TypeError, ValueError):
        return  # unknown id scheme: everything is persisted when chat() returns
    if 0 <= index < count:
        persist(index, output)


@contextlib.contextmanager
def _tap_finished(llm: Any, callback: Callable[[Any], None]) -> Iterator[None]:
    """Call ``callback`` for each request as the engine finishes it, inside ``LLM.chat``.

    ``LLM.chat`` returns only when the whole batch is done; wrapping the engine's ``step`` (the
    loop ``_run_engine`` drives) sees each output as it completes, so a run killed mid-way has
    already stored everything finished, while the batch, the progress bar and the call stay
    exactly vLLM's. If this vLLM has no ``step`` to wrap, generations are stored at the end."""
    engine = llm.llm_engine
    original = getattr(engine, "step", None)
    if original is None:
        yield
        return

    def step(*args: Any, **kwargs: Any) -> Any:
        outputs = original(*args, **kwargs)
        for output in outputs:
            if getattr(output, "finished", False):
                callback(output)
        return outputs

    engine.step = step
    try:
        yield
    finally:
        del engine.step  # back to the class's method; no reference to the closure remains
