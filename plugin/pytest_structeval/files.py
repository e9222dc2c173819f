"""Reading and writing the files the pipeline shares: one rule for each.

* ``write_atomic``: every file the plugin writes (reports, cache entries, snapshots, built
  models' metadata) goes to a temporary name in the same directory and is renamed into place,
  so a crash or a concurrent reader never sees half a file. Permissions follow the umask, as
  for any file a user's tool writes: reports, snapshots and caches are meant to be shared.
* ``cache_root``: where generations and built-in models are kept.
* ``sha256_file``: a file's digest (model fingerprints, built models' checksums).
* ``read_json``: any failure names the file, and the line and column of a syntax error.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from pathlib import Path

CACHE_ENV = "PYTEST_STRUCTEVAL_CACHE"


def cache_root() -> Path:
    """``$PYTEST_STRUCTEVAL_CACHE``, else ``$XDG_CACHE_HOME/pytest-structeval``, else
    ``~/.cache/pytest-structeval``: generations live in ``generations/``, built-in models in
    ``models/``, side by side so that CI caches both with one path."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / "pytest-structeval").resolve()


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write ``data`` (text as UTF-8, newlines untranslated) beside ``path``, then rename it
    into place. ``os.replace`` is atomic on POSIX and Windows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    # Created 0666 minus the umask by the kernel itself (mkstemp's 0600 would need a chmod, and
    # reading the umask means setting it, process-wide, under other threads' feet).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def dump_json(data: object) -> str:
    """JSON text with non-ASCII kept as UTF-8. A lone surrogate (models do emit them) cannot be
    encoded in UTF-8, so it is written as its ``\\uXXXX`` escape: JSON-equivalent, and the
    file stays valid UTF-8. Structural characters are ASCII, so this only touches strings."""
    text = json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def read_json(path: Path, *, what: str, error: type[ValueError]) -> object:
    """Parse a JSON file; any failure raises ``error`` naming the file (and line/column)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # json's messages that end in "at" ("Unterminated string starting at") take the
        # position as their object; the others get it after "at".
        where = f"line {exc.lineno}, column {exc.colno}"
        reason = f"{exc.msg} {where}" if exc.msg.endswith(" at") else f"{exc.msg} at {where}"
        raise error(f"{path}: {what} is not valid JSON: {reason}") from None
