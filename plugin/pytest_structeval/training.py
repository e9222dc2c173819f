"""Evaluate a LoRA fine-tune on StructEval-T while it trains: a ``transformers`` callback.

``StructEvalCallback`` evaluates each checkpoint the trainer saves (or, with ``eval_steps``,
the adapter every N steps) on a task file or a subset of it, writes the evaluation's
report.json, report.html and inference.json beside the checkpoint
(``checkpoint-N/structeval/``), and logs the scores through the trainer's own logging, so they
reach ``trainer.state.log_history`` and whatever ``report_to`` names (TensorBoard, W&B,
MLflow) at the checkpoint's step::

    trainer = SFTTrainer(model=model, args=args, train_dataset=data, peft_config=lora)
    StructEvalCallback("builtin:smollm2", max_tokens=1024).attach(trainer)
    trainer.train()

How: one ``vllm serve`` of the *base* model, started at the first evaluation with runtime LoRA
updating on; each checkpoint is loaded into it as a new LoRA (``POST /v1/load_lora_adapter``,
named ``checkpoint-N``), evaluated through the OpenAI-compatible endpoint with the project's
served backend (``OpenAIBackend``, as ``--endpoint``), and unloaded again; the server is stopped
at the end of training (and, as a safety net, when the callback is collected or the interpreter
exits). The base model is loaded once; a checkpoint costs only its generations. The server is a
process of its own: the training process never holds an engine, and the server's GPU share is
bounded (``gpu_memory_utilization``) or on another GPU (``cuda_visible_devices``); with
``keep_server=False`` it is stopped after each evaluation, so nothing is held between them.

A callback gets no reference to its trainer, and the scores must go through ``Trainer.log`` at
the checkpoint's step (user callbacks run after the ``report_to`` ones, so merging into a later
``on_log`` would reach neither the integrations nor the right step): ``attach(trainer)``
registers the callback and keeps the trainer to log through.

This module is the trainer's: it imports ``transformers`` at the top. The package does not
import it, and vLLM is never imported here (the server process does).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from transformers import Trainer, TrainerCallback

from .backends.adapter import read_adapter
from .backends.platform import platform_is_cpu
from .backends.request import engine_args
from .backends.served import OpenAIBackend
from .backends.server import VllmServer
from .core import Evaluation
from .models import resolve_model
from .report.report import Report
from .settings import Engine, Sampling, Settings
from .tasks import BUNDLED_TASKS, FORMATS, Task, TaskSet

logger = logging.getLogger(__name__)

# The variable that makes vLLM's server expose /v1/load_lora_adapter and /unload_lora_adapter.
RUNTIME_LORA_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"
REPORT_DIR = "structeval"


class StructEvalCallbackError(RuntimeError):
    """The callback cannot evaluate (no trainer to log through, not a LoRA fine-tune, an
    adapter the server refused); the message says what to do."""


def metrics_of(report: Report, prefix: str = REPORT_DIR) -> dict[str, float]:
    """The scalars one evaluation logs: ``overall`` (the report's headline), ``estimate`` (the
    competition estimate, weighted per-format means) with its 90% range when there is one, the
    task mean, the parse rate, and each evaluated format's mean."""
    s = report.summary
    metrics: dict[str, Any] = {
        "overall": s.get("overall"),
        "estimate": s.get("format_weighted"),
        "task_mean": s.get("task_mean"),
        "parse_rate": s.get("parse_rate"),
        "n_tasks": s.get("n_tasks"),
    }
    interval = s.get("estimate_interval")
    if interval:
        metrics["estimate_low"], metrics["estimate_high"] = interval
    for fmt in FORMATS:
        row = (s.get("by_format") or {}).get(fmt) or {}
        if row.get("n"):
            metrics[fmt] = row.get("mean")
    return {f"{prefix}/{k}": float(v) for k, v in metrics.items() if v is not None}


class StructEvalCallback(TrainerCallback):
    """Evaluates the trained LoRA adapter on StructEval-T at each save (see the module
    docstring).

    * ``model``: the base model being fine-tuned, as the evaluation names it (HF id, local
      directory, ``builtin:NAME``).
    * ``tasks``: a task file or ``TaskSet`` (default: the bundled open tasks); ``subset``: the
      task ids (or ``Task`` values) to evaluate, default all of them.
    * ``max_tokens``, ``structured_outputs``, ``max_model_len``, ``vllm_args``: as for an
      evaluation (``Settings``); ``vllm_args`` also become the server's flags.
    * ``eval_steps``: None evaluates each checkpoint the trainer saves; N evaluates every N
      optimizer steps instead, saving the adapter itself into ``<output_dir>/structeval/step-N``.
    * ``gpu_memory_utilization``: the server's share of its GPU's memory (weights and KV cache
      together); on the training GPU it is taken from training for as long as the server runs.
      None: vLLM's default (0.9, only sensible on a GPU of its own). Ignored on the CPU build.
    * ``cuda_visible_devices``: the GPU(s) the server may use (its ``CUDA_VISIBLE_DEVICES``),
      e.g. ``"1"`` while training runs on GPU 0.
    * ``keep_server``: True keeps one server for the whole training (one start); False stops
      it after each evaluation (nothing held between evaluations, a start each time).
    * ``server_args``: extra ``vllm serve`` arguments, appended last.
    * ``prefix``: the metrics' name prefix (``structeval/overall``, ...).
    """

    def __init__(
        self,
        model: str,
        *,
        tasks: str | Path | TaskSet = BUNDLED_TASKS,
        subset: Iterable[str | Task] | None = None,
        max_tokens: int = Sampling.max_tokens,
        structured_outputs: bool = False,
        max_model_len: int = Engine.max_model_len,
        vllm_args: Mapping[str, object] | None = None,
        eval_steps: int | None = None,
        gpu_memory_utilization: float | None = 0.3,
        cuda_visible_devices: str | None = None,
        keep_server: bool = True,
        server_args: Sequence[str] = (),
        prefix: str = REPORT_DIR,
        start_timeout: float = 600.0,
    ) -> None:
        self.taskset = tasks if isinstance(tasks, TaskSet) else TaskSet.load(Path(tasks))
        self.subset = (
            None
            if subset is None
            else [t.task_id if isinstance(t, Task) else str(t) for t in subset]
        )
        if eval_steps is not None and eval_steps <= 0:
            raise ValueError(f"eval_steps must be a positive integer or None, got {eval_steps}")
        self.model = model
        self.eval_steps = eval_steps
        self.keep_server = keep_server
        self.cuda_visible_devices = cuda_visible_devices
        self.server_args = tuple(server_args)
        self.prefix = prefix
        self.start_timeout = start_timeout
        # Checked now (SettingsError names the field), not at the first save.
        self.settings = Settings.of(
            endpoint="http://127.0.0.1/v1",  # replaced per evaluation by the server's URL
            model=model,
            tasks=self.taskset.source,
            max_tokens=max_tokens,
            structured_outputs=structured_outputs,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            vllm_args=dict(vllm_args or {}),
        )
        self.trainer: Trainer | None = None
        self.server: VllmServer | None = None
        self._finalizer: weakref.finalize | None = None
        self._max_lora_rank: int | None = None
        # The callback's server runs this machine's vLLM: the CPU build takes no request seed.
        self._cpu = platform_is_cpu()
        # One entry per evaluation: step, checkpoint, metrics, seconds (and the server start).
        self.evaluations: list[dict[str, Any]] = []

    # -- wiring ------------------------------------------------------------------------------

    def attach(self, trainer: Trainer) -> StructEvalCallback:
        """Register with ``trainer`` (unless it is registered already) and log through it."""
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        self.trainer = trainer
        return self

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # type: ignore[no-untyped-def]
        if self.trainer is None:
            raise StructEvalCallbackError(
                "StructEvalCallback has no trainer to log through: call "
                "callback.attach(trainer) after creating the trainer (instead of, or besides, "
                "callbacks=[...])"
            )
        if model is not None and not hasattr(model, "peft_config"):
            raise StructEvalCallbackError(
                "StructEvalCallback evaluates LoRA adapters, and this trainer's model has no "
                "peft_config: train with peft (get_peft_model, or TRL's peft_config=...)"
            )

    # -- when to evaluate ------------------------------------------------------------------

    def on_save(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        if self.eval_steps is None and state.is_world_process_zero:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.evaluate(checkpoint, step=state.global_step, output_dir=Path(args.output_dir))

    def on_step_end(self, args, state, control, model=None, **kwargs):  # type: ignore[no-untyped-def]
        step = state.global_step
        if self.eval_steps is None or step % self.eval_steps or not state.is_world_process_zero:
            return
        adapter = Path(args.output_dir) / REPORT_DIR / f"step-{step}"
        model.save_pretrained(str(adapter))
        self.evaluate(adapter, step=step, output_dir=Path(args.output_dir))

    def on_train_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
        self.close()

    # -- the evaluation ----------------------------------------------------------------------

    def evaluate(self, adapter: Path, *, step: int, output_dir: Path) -> dict[str, float]:
        """Load ``adapter`` into the server as ``checkpoint-<step>``, evaluate it, write the
        reports into ``adapter/structeval/``, unload it, and log the metrics at ``step``."""
        info = read_adapter(adapter)  # AdapterError names the problem, before the server
        started = time.perf_counter()
        server_seconds = 0.0
        if self.server is None:
            self._start_server(info.max_lora_rank, output_dir)
            assert self.server is not None
            server_seconds = self.server.start_seconds or 0.0
        elif info.max_lora_rank > (self._max_lora_rank or 0):
            raise StructEvalCallbackError(
                f"{adapter} has LoRA rank {info.rank}, above the server's max_lora_rank "
                f"{self._max_lora_rank} (from the first checkpoint); pass "
                f"vllm_args={{'max_lora_rank': {info.max_lora_rank}}}"
            )
        server = self.server
        name = f"checkpoint-{step}"
        _lora_request(server, "load_lora_adapter", {"lora_name": name, "lora_path": str(adapter)})
        try:
            report = self._run(server, name, adapter / REPORT_DIR)
        finally:
            _lora_request(server, "unload_lora_adapter", {"lora_name": name})
            if not self.keep_server:
                self.close()
        seconds = time.perf_counter() - started
        metrics = metrics_of(report, self.prefix)
        metrics[f"{self.prefix}/seconds"] = round(seconds, 3)
        self.evaluations.append(
            {
                "step": step,
                "adapter": str(adapter),
                "metrics": metrics,
                "seconds": seconds,
                "server_start_seconds": server_seconds,
            }
        )
        logger.info("StructEval at step %d: %s (%.1f s)", step, metrics, seconds)
        assert self.trainer is not None  # on_train_begin checked it
        # The base class's log, not an override: TRL's trainers merge (and clear) their own
        # running training metrics in theirs, which are not ours to flush.
        Trainer.log(self.trainer, dict(metrics))
        return metrics

    def _run(self, server: VllmServer, lora: str, out_dir: Path) -> Report:
        settings = Settings.of(
            tasks=self.settings.tasks,
            sampling=self.settings.sampling,
            engine=self.settings.engine,
            endpoint=server.url,
            api_key=server.api_key,
            model=self.model,
            adapter=lora,
            cache=self.settings.cache,
            enabled=False,  # a checkpoint path is reused by a rerun into the same output_dir
            out_dir=out_dir,
        )
        backend = OpenAIBackend(
            settings.engine,
            settings.sampling,
            settings.serving,
            cache=None,
            progress=False,
            trust_env=False,  # a loopback server: no proxy may stand in between
            cpu_server=self._cpu,
        )
        with Evaluation(settings, tasks=self.taskset, backend=backend) as evaluation:
            report = evaluation.run(self.subset)
            evaluation.write(report, out_dir)
        return report

    def _start_server(self, max_lora_rank: int, output_dir: Path) -> None:
        engine: Engine = self.settings.engine
        requested = engine.vllm_args.get("max_lora_rank")
        self._max_lora_rank = int(str(requested)) if requested is not None else max_lora_rank
        args = engine_args(
            engine,
            self.settings.sampling,
            model_path=resolve_model(self.model, root=self.settings.cache.root),
            max_lora_rank=self._max_lora_rank,
            cpu=self._cpu,
        )
        env = {RUNTIME_LORA_ENV: "True"}
        if self.cuda_visible_devices is not None:
            env["CUDA_VISIBLE_DEVICES"] = self.cuda_visible_devices
        server = VllmServer(
            args,
            log_dir=output_dir / REPORT_DIR,
            server_args=self.server_args,
            served_model_name=self.model,
            # One replica: never data-parallel over the GPUs training uses.
            gpus=len(self.cuda_visible_devices.split(",")) if self.cuda_visible_devices else 1,
            start_timeout=self.start_timeout,
            env=env,
        )
        server.start()
        self.server = server
        # Stops the server if training dies before on_train_end (an exception in the loop),
        # when the callback is collected, or at interpreter exit.
        self._finalizer = weakref.finalize(self, server.stop)

    def close(self) -> None:
        """Stop the server (the trainer calls this at the end of training)."""
        server, self.server = self.server, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if server is not None:
            server.stop()


def _lora_request(server: VllmServer, route: str, body: Mapping[str, str]) -> None:
    import httpx  # lazy as in the served backend: only serving needs an HTTP client

    headers = {"Authorization": f"Bearer {server.api_key}"} if server.api_key else {}
    reply = httpx.post(
        f"{server.url}/{route}", json=dict(body), headers=headers, timeout=300.0, trust_env=False
    )
    if reply.status_code != 200:
        raise StructEvalCallbackError(
            f"POST {server.url}/{route} {dict(body)} failed: HTTP {reply.status_code}: "
            f"{reply.text[:500]} (server log: {server.log_path})"
        )
