"""LoRA adapters: the rules vLLM applies (``vllm/lora/peft_helper.py``), checked before any
engine exists, because a bad adapter inside the engine kills it (``EngineDeadError``).

Standard library only: the preflight uses it on machines without vLLM.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# vLLM's max_lora_rank is one of these (a Literal in vllm/config/lora.py, 0.13-0.33).
ALLOWED_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
WEIGHT_FILES = ("adapter_model.safetensors", "adapter_model.bin")


class AdapterError(ValueError):
    """An adapter vLLM would refuse; the message names the directory and every problem."""


@dataclass(frozen=True)
class AdapterInfo:
    path: str
    rank: int
    max_lora_rank: int
    config: dict[str, Any]


def adapter_problems(config: Mapping[str, Any], directory: Path) -> list[str]:
    """Everything in a PEFT adapter that vLLM rejects, as short phrases."""
    problems = []
    peft_type = str(config.get("peft_type", "LORA")).upper()
    if peft_type != "LORA":
        problems.append(f"peft_type {peft_type} is not LoRA (vLLM serves LoRA adapters only)")
    if config.get("use_dora"):
        problems.append("use_dora=true: vLLM rejects DoRA adapters")
    if config.get("bias", "none") not in (None, "none"):
        problems.append(f"bias={config.get('bias')!r}: vLLM needs bias='none'")
    extra = [m for m in config.get("modules_to_save") or [] if m not in ("classifier", "score")]
    if extra:
        problems.append(f"modules_to_save={extra}: vLLM allows only classifier/score")
    ranks = [config.get("r"), *(config.get("rank_pattern") or {}).values()]
    if not all(isinstance(r, int) and r > 0 for r in ranks):
        problems.append(f"no valid rank (r={config.get('r')!r})")
    elif max(ranks) > ALLOWED_LORA_RANKS[-1]:
        problems.append(
            f"rank r={max(ranks)} exceeds vLLM's largest max_lora_rank {ALLOWED_LORA_RANKS[-1]}"
        )
    if not any((directory / name).is_file() for name in WEIGHT_FILES):
        problems.append(f"no {' or '.join(WEIGHT_FILES)}")
    return problems


def read_adapter(directory: Path, *, max_lora_rank: int | None = None) -> AdapterInfo:
    """Check the adapter in ``directory``; pick the smallest allowed max_lora_rank that fits
    unless one is given."""
    config_path = directory / "adapter_config.json"
    if not config_path.is_file():
        raise AdapterError(f"{directory}: no adapter_config.json (is it a PEFT LoRA adapter?)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AdapterError(f"{config_path} does not parse: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterError(f"{config_path} must hold a JSON object")
    problems = adapter_problems(config, directory)
    if problems:
        raise AdapterError(f"adapter {directory}: {'; '.join(problems)}")
    rank = max([config["r"], *(config.get("rank_pattern") or {}).values()])
    if max_lora_rank is None:
        max_lora_rank = next(r for r in ALLOWED_LORA_RANKS if r >= rank)
    elif max_lora_rank not in ALLOWED_LORA_RANKS:
        raise AdapterError(
            f"max_lora_rank={max_lora_rank} is not one of vLLM's {list(ALLOWED_LORA_RANKS)}"
        )
    elif rank > max_lora_rank:
        raise AdapterError(
            f"adapter {directory}: rank {rank} exceeds max_lora_rank={max_lora_rank}; "
            "raise it with --vllm-arg max_lora_rank=N"
        )
    return AdapterInfo(str(directory), rank, max_lora_rank, config)


def _adapter_dir(path_or_id: str) -> Path:
    path = Path(path_or_id).expanduser()
    if path.is_dir():
        return path
    if path.exists() or path_or_id.startswith((".", "/", "~")) or path_or_id.count("/") != 1:
        raise AdapterError(f"--adapter {path_or_id}: no such adapter directory")
    try:
        import huggingface_hub  # only a hub adapter id gets here

        return Path(huggingface_hub.snapshot_download(path_or_id))
    except Exception as exc:
        raise AdapterError(
            f"--adapter {path_or_id}: not a local directory and not fetchable from the hub "
            f"({type(exc).__name__}: {exc})"
        ) from None


def validate_adapter(path_or_id: str, *, max_lora_rank: int | None = None) -> AdapterInfo:
    """Find the adapter (a directory, or a hub id fetched once) and check it as vLLM will."""
    return read_adapter(_adapter_dir(path_or_id), max_lora_rank=max_lora_rank)
