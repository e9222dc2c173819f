"""What produced a generation: fingerprints of the model, adapter and chat template.

These feed the generation cache's key. Nothing here imports vLLM or torch: a run served
entirely from the cache must be able to compute its keys without either.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

from ..files import sha256_file

logger = logging.getLogger(__name__)

# Engine arguments that only decide where the KV cache fits, never which tokens come out
# (greedy decoding; vLLM's own batch-variance caveat aside). They stay out of the cache key so
# that an out-of-memory fallback rung reuses, and feeds, the same cache entries.
MEMORY_ONLY_ARGS = frozenset({"gpu_memory_utilization", "kv_cache_memory_bytes", "swap_space"})
# Weight files above this size are fingerprinted by size, mtime and three 1 MiB samples instead
# of a full sha256 (see ``fingerprint_dir``).
FULL_HASH_LIMIT = 64 * 1024 * 1024
SAMPLE_BYTES = 1024 * 1024


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
            entry = f"{rel}\0{stat.st_size}\0{sha256_file(path)}"
        else:
            entry = (
                f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\0{_sampled_digest(path, stat.st_size)}"
            )
        digest.update(entry.encode() + b"\n")
    return digest.hexdigest()


def hub_offline() -> bool:
    """Whether the Hugging Face hub is off limits: ``HF_HUB_OFFLINE`` or, as huggingface_hub
    and transformers also read it, ``TRANSFORMERS_OFFLINE``."""
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers at all: one request, no retries, asked once per
    process. huggingface_hub's downloads retry a refused connection for about 23 s per file,
    so an unreachable hub is found out here first."""
    # Only a hub id that is not cached asks the network: keep it out of every other run.
    import urllib.error
    import urllib.request

    from huggingface_hub import constants  # only hub ids get here

    try:
        urllib.request.urlopen(
            urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout
        )
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


def hub_revision(repo_id: str, revision: str | None = None) -> str | None:
    """The commit a hub id resolves to, without downloading weights.

    Online: the hub's model info. Offline (``hub_offline``) or when the hub is unreachable: the
    snapshot already in the local HF cache (the one vLLM will load). None if neither knows."""
    import huggingface_hub  # optional at scoring time; only hub ids need it

    if not hub_offline():
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
        import huggingface_hub  # only hub ids get here

        if hub_offline() or not hub_reachable():
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


def sha256_text(text: str | None) -> str | None:
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
