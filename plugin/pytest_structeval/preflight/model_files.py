"""Model and adapter files: whether what ``--model`` and ``--adapter`` name is complete before
anything downloads or loads it (a local directory, the Hugging Face cache, or the Hub).

Standard library only (``huggingface_hub`` only for a Hub id that is not cached): these checks
also run when no engine will start.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..backends.adapter import AdapterError, read_adapter
from ..backends.identity import hub_offline
from ..models import BUILTIN_PREFIX, BUILTIN_TINY, ModelError, builtin_model
from .results import CheckResult, failed, gib, passed, skipped

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.txt", "tekken.json")
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _has_tokenizer(names: set[str]) -> bool:
    return (
        any(n in names for n in _TOKENIZER_FILES)
        or {"vocab.json", "merges.txt"} <= names
        or any(n.endswith(".tiktoken") for n in names)
    )


def _weight_files(names: Iterable[str]) -> list[str]:
    weights = [
        n
        for n in names
        if n.endswith(_WEIGHT_SUFFIXES)
        and "/" not in n
        and not n.startswith(("training_args", "optimizer", "scheduler", "rng_state"))
    ]
    # vLLM prefers safetensors when both are there.
    safetensors = [n for n in weights if n.endswith(".safetensors")]
    return safetensors or weights


@dataclass(frozen=True)
class ModelFiles:
    """What the model check found: its verdict, and what the memory checks need."""

    result: CheckResult
    weight_bytes: int | None = None
    checkpoint_dtype: str | None = None


def _inspect_model_dir(path: Path, label: str) -> ModelFiles:
    """A model directory needs config.json, tokenizer files and (all shards of) its weights."""
    names = {p.name for p in path.iterdir()}
    missing = []
    config: dict[str, object] = {}
    if "config.json" not in names:
        missing.append("config.json")
    else:
        try:
            config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return ModelFiles(
                failed(
                    f"{label}: config.json does not parse: {exc}",
                    f"re-download the model's config.json into {path}",
                )
            )
    base = config.get("_name_or_path") if isinstance(config.get("_name_or_path"), str) else None
    if not _has_tokenizer(names):
        missing.append("tokenizer files (tokenizer.json, tokenizer.model or vocab.json+merges.txt)")
    weights = _weight_files(names)
    for index in _INDEX_FILES:
        if index in names:
            try:
                shards = set(
                    json.loads((path / index).read_text(encoding="utf-8"))["weight_map"].values()
                )
            except (OSError, ValueError, KeyError, AttributeError) as exc:
                return ModelFiles(
                    failed(
                        f"{label}: {index} does not parse: {exc}",
                        f"re-download {index} into {path}",
                    )
                )
            absent = sorted(s for s in shards if s not in names)
            if absent:
                missing.append(
                    f"weight shards listed in {index} ({', '.join(absent[:3])}"
                    f"{' …' if len(absent) > 3 else ''}: an interrupted download?)"
                )
            break
    if not weights:
        missing.append("weights (*.safetensors or pytorch_model*.bin)")
    if missing:
        return ModelFiles(
            failed(f"{label} lacks {'; '.join(missing)}", _model_dir_fix(path, missing, base))
        )
    size = sum((path / n).stat().st_size for n in weights)
    dtype = config.get("torch_dtype") or config.get("dtype")
    return ModelFiles(
        passed(f"{label}: config.json, tokenizer and {len(weights)} weight file(s), {gib(size)}"),
        weight_bytes=size,
        checkpoint_dtype=dtype if isinstance(dtype, str) else None,
    )


def _model_dir_fix(path: Path, missing: list[str], base: str | None) -> str:
    source = base if base and not os.path.isabs(base) else "<the base model id>"
    if len(missing) == 1 and missing[0].startswith("tokenizer"):
        return (
            f"save the base model's tokenizer into the directory: python -c \"from transformers "
            f"import AutoTokenizer; AutoTokenizer.from_pretrained('{source}').save_pretrained('{path}')\""
        )
    return (
        f"download the complete model into the directory: hf download {source} --local-dir {path}"
    )


def _hf_cache_dir() -> Path:
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "huggingface" / "hub"


def _cached_snapshot(repo_id: str) -> Path | None:
    """The snapshot ``main`` points to in the local HF cache (else the newest one), or None."""
    repo = _hf_cache_dir() / f"models--{repo_id.replace('/', '--')}"
    snapshots = repo / "snapshots"
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip()
        if candidate.is_dir():
            return candidate
    if snapshots.is_dir():
        found = sorted(
            (p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
        if found:
            return found[-1]
    return None


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


def hub_model_info(repo_id: str, timeout: float) -> object:
    from huggingface_hub import model_info  # lazy: only for a hub id that is not cached

    return model_info(repo_id, timeout=timeout, files_metadata=True)


def resolve_model_files(model: str, hub_timeout: float) -> ModelFiles:
    if model.startswith(BUILTIN_PREFIX):
        try:
            recipe = builtin_model(model)
        except ModelError as exc:
            return ModelFiles(failed(str(exc), f"--model={BUILTIN_TINY}"))
        assert recipe is not None
        missing = recipe.unavailable()
        if missing is not None:
            return ModelFiles(failed(f"{model}: cannot be built here", missing))
        return ModelFiles(
            passed(f"{model}: {recipe.description}, built locally on first use"),
            weight_bytes=recipe.weight_bytes,
        )
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            return ModelFiles(
                failed(
                    f"--model {model} is a file, not a model directory",
                    "pass the directory that holds config.json",
                )
            )
        return _inspect_model_dir(path, f"model directory {path}")
    if model.startswith((".", "/", "~")) or not _HUB_ID.fullmatch(model):
        return ModelFiles(
            failed(
                f"model directory {path} does not exist",
                "pass an existing model directory or a Hugging Face model id",
            )
        )
    snapshot = _cached_snapshot(model)
    if snapshot is not None:
        found = _inspect_model_dir(snapshot, f"{model} (cached in {snapshot})")
        if found.result.status == "pass" or hub_offline():
            return found
    if hub_offline():
        return ModelFiles(
            failed(
                f"HF_HUB_OFFLINE=1 and {model} is not in the Hugging Face cache {_hf_cache_dir()}",
                f"download it where there is network (hf download {model}) into the same cache "
                f"(HF_HUB_CACHE), or pass --model=<local directory>",
            )
        )
    try:
        info = hub_model_info(model, hub_timeout)
    except ImportError:
        return ModelFiles(
            skipped(f"{model} is not cached and huggingface_hub is not installed to look it up")
        )
    except Exception as exc:
        return ModelFiles(_hub_failure(model, exc))
    siblings = {
        s.rfilename: getattr(s, "size", None) for s in (getattr(info, "siblings", None) or [])
    }
    names = set(siblings)
    missing = [
        what
        for what, ok in (
            ("config.json", "config.json" in names),
            ("tokenizer files", _has_tokenizer(names)),
            ("weights", bool(_weight_files(names))),
        )
        if not ok
    ]
    if missing:
        return ModelFiles(
            failed(
                f"Hub repository {model} lacks {', '.join(missing)}",
                "pick a repository with transformers-format weights and tokenizer",
            )
        )
    sizes = [siblings[n] for n in _weight_files(names)]
    size = sum(sizes) if all(isinstance(s, int) for s in sizes) else None
    return ModelFiles(
        passed(
            f"{model} resolves on the Hub; it will be downloaded"
            + (f" ({gib(size)} of weights)" if size else "")
        ),
        weight_bytes=size,
    )


def _hub_failure(model: str, exc: Exception) -> CheckResult:
    kind = type(exc).__name__
    if "GatedRepo" in kind:
        return failed(
            f"{model} is gated: {exc}",
            f"accept its licence on https://huggingface.co/{model}, then `hf auth login`",
        )
    if "RepositoryNotFound" in kind or "RevisionNotFound" in kind:
        return failed(
            f"{model} does not exist on the Hub (or is private): {exc}",
            "check the id, or `hf auth login` for a private repository",
        )
    return failed(
        f"cannot reach the Hugging Face Hub to resolve {model} ({kind}: {exc})",
        f"download it where there is network (hf download {model}), then set HF_HUB_OFFLINE=1; "
        f"or pass --model=<local directory>",
    )


def inspect_adapter(adapter: str, model: str) -> CheckResult:
    """A PEFT LoRA directory vLLM accepts (``vllm/lora/peft_helper.py``): a bad one kills the
    whole engine (``EngineDeadError``), so it is checked before the engine starts."""
    path = Path(adapter).expanduser()
    if not path.exists():
        if not _HUB_ID.fullmatch(adapter) or adapter.startswith((".", "/", "~")):
            return failed(
                f"adapter directory {path} does not exist",
                "pass an existing PEFT adapter directory",
            )
        snapshot = _cached_snapshot(adapter)
        if snapshot is None:
            return failed(
                f"adapter {adapter} is neither a directory nor in the Hugging Face cache {_hf_cache_dir()}",
                f"download it first: hf download {adapter} --local-dir <dir>, then --adapter=<dir>",
            )
        path = snapshot
    if not path.is_dir():
        return failed(
            f"adapter {path} is not a directory",
            "pass the directory that holds adapter_config.json",
        )
    try:
        info = read_adapter(path)
    except AdapterError as exc:
        return failed(
            str(exc),
            "retrain or re-save the adapter as a plain LoRA (peft LoraConfig "
            "with use_dora=False, bias='none') and save_pretrained it",
        )
    rank, config = info.rank, info.config
    detail = f"adapter {path}: LoRA r={rank}"
    base = config.get("base_model_name_or_path")
    if isinstance(base, str) and base and base != model and not model.startswith(BUILTIN_PREFIX):
        detail += f" (trained on {base}; evaluating on {model})"
    return passed(detail)
