"""Output snapshots: one file per task, in the output's own format, through syrupy.

Layout: ``<snapshot dir>/<slug>/<task_id>.<ext>``, where the snapshot directory defaults to
``<rootdir>/__structeval_snapshots__`` and the slug names the run (``snapshot_slug``): the model,
adapter and output-changing settings, or, for a replay, the generations file, so that ``git diff`` between two model directories reads as a
diff of TOML, YAML, ... files.

Why not syrupy's own ``__snapshots__`` directory: the plain ``snapshot`` fixture registers
syrupy's default (amber) extension, which scans ``__snapshots__`` recursively and calls every
file it does not own an "unknown snapshot collection". A run of model A would then fail with
"snapshot unused" on model B's files, and ``--snapshot-update`` would delete them. In a
directory of our own nothing else looks.

For the same reason our extension opts out of syrupy's unused-snapshot discovery: syrupy ties a
snapshot to a test through the test file's name, which a per-model directory of task ids does
not carry, so it would flag the snapshots of tasks deselected with ``-m`` or ``-k`` (or
skipped) as unused. Unused detection is done here, by task id, with ``unused_snapshots``.

Writing a missing snapshot without failing is syrupy's ``--snapshot-update-new-only`` behaviour,
applied to this one assertion (``update_new_snapshots_only=True``); syrupy then counts it as
"generated" in its summary. Writes are queued and flushed when the session (or xdist worker)
finishes; each task runs on exactly one worker, so each file has exactly one writer.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from syrupy.constants import TEXT_ENCODING
from syrupy.data import Snapshot, SnapshotCollection, SnapshotCollections
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from ..files import write_atomic
from ..tasks import FORMATS

if TYPE_CHECKING:
    from syrupy.assertion import SnapshotAssertion
    from syrupy.location import PyTestLocation
    from syrupy.types import SerializedData, SnapshotIndex

SNAPSHOT_DIRNAME = "__structeval_snapshots__"
SnapshotOutcome = Literal["new", "match", "updated"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_MAX_SLUG = 120


class SnapshotMismatch(AssertionError):
    """The output differs from the stored snapshot; ``str()`` is the readable diff."""

    def __init__(self, *, task_id: str, path: str, diff: str) -> None:
        self.task_id = task_id
        self.path = path
        self.diff = diff
        super().__init__(
            f"output of {task_id} differs from its snapshot {path}\n"
            f"(run with --snapshot-update to accept the new output)\n{diff}"
        )


class StructEvalSnapshotExtension(SingleFileSnapshotExtension):
    """One UTF-8 text file per task; subclasses fix ``root``, ``slug`` and ``file_extension``.

    The snapshot index is the task id (``snapshot(name=task_id)``), so it names the file.
    """

    _write_mode = WriteMode.TEXT
    # Queue writes until the session (or worker) finishes, as syrupy does for amber files.
    write_immediately = False
    root = ""
    slug = ""
    file_extension = ""

    @classmethod
    def dirname(cls, *, test_location: PyTestLocation) -> str:
        # Not beside the test file: a task item's file is the task file, which may live in
        # site-packages (the bundled set) or anywhere on disk.
        return str(Path(cls.root) / cls.slug)

    @classmethod
    def discovery_dirname(cls, *, test_location: PyTestLocation) -> str:
        return cls.dirname(test_location=test_location)

    @classmethod
    def get_file_basename(cls, *, test_location: PyTestLocation, index: SnapshotIndex) -> str:
        return str(index)

    def discover_snapshots(
        self, *, test_location: PyTestLocation, ignore_extensions: list[str] | None = None
    ) -> SnapshotCollections:
        # Opt out of syrupy's unused detection (see the module docstring).
        return SnapshotCollections()

    def read_snapshot_data_from_location(
        self, *, snapshot_location: str, snapshot_name: str, session_id: str
    ) -> str | None:
        try:
            # newline="": compare the bytes on disk, not a newline-translated copy.
            with open(snapshot_location, encoding=TEXT_ENCODING, newline="") as f:
                return f.read()
        except FileNotFoundError:
            return None

    @classmethod
    def write_snapshot(
        cls,
        *,
        snapshot_location: str,
        snapshots: list[tuple[SerializedData, PyTestLocation, SnapshotIndex]],
        **_: object,
    ) -> None:
        # Replaces syrupy's write_snapshot, which warns "Can not relate snapshot location" for
        # each file that is not named after the test file (here the task file's stem) nor in a
        # directory so named: ours are <root>/<slug>/<task_id>.<ext>. Only the latest syrupy 7
        # releases ask the extension (matches_test_location); the others ask PyTestLocation
        # alone, so not running the check is the one way to be silent in every supported
        # version. ``**_`` takes ``name_order`` (syrupy >= 6), of no use to a one-snapshot file.
        if not snapshots:
            return
        collection = SnapshotCollection(location=snapshot_location)
        for data, test_location, index in snapshots:
            name = cls.get_snapshot_name(test_location=test_location, index=index)
            collection.add(Snapshot(name=name, data=data))
        cls.write_snapshot_collection(snapshot_collection=collection)

    @classmethod
    def write_snapshot_collection(
        cls, *, snapshot_collection: SnapshotCollection, name_order: dict[str, int] | None = None
    ) -> None:
        path = Path(snapshot_collection.location)
        data = next(iter(snapshot_collection)).data
        if not isinstance(data, str):
            raise TypeError(f"snapshot data for {path} must be str, got {type(data).__name__}")
        write_atomic(path, data)


def extension_for(root: Path, slug: str, fmt: str) -> type[StructEvalSnapshotExtension]:
    """The extension class for one snapshot directory and one format (one class per pair)."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if not slug or slug != _slugify(slug):
        raise ValueError(
            f"snapshot slug {slug!r} is not filesystem-safe; build it with snapshot_slug()"
        )
    return _extension_class(str(root), slug, fmt)


@cache
def _extension_class(root: str, slug: str, fmt: str) -> type[StructEvalSnapshotExtension]:
    # Cached so that syrupy, which keys its write queue by class, sees one class per file.
    return type(
        f"StructEval{fmt.upper()}SnapshotExtension",
        (StructEvalSnapshotExtension,),
        {"root": root, "slug": slug, "file_extension": fmt, "__module__": __name__},
    )


def _slugify(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("._-")


def _name_part(text: str) -> str:
    # "Qwen/Qwen3-4B" -> "Qwen--Qwen3-4B"; "/ckpt/run1/" -> "ckpt--run1".
    parts = [p for p in re.split(r"[/\\]+", text.strip()) if p not in ("", ".", "..")]
    return _slugify("--".join(_slugify(p) for p in parts))


def snapshot_slug(
    model: str | None,
    adapter: str | None = None,
    generations: str | None = None,
    *,
    variant: Mapping[str, object] | None = None,
) -> str:
    """A readable, filesystem-safe directory name for one run: a model (+ adapter) with the
    settings that change its outputs, or a replayed file.

    ``generations`` wins: a replay is named after its file's stem plus a digest of the path as
    given (``replay-inference-1a2b3c4d``), so that two submissions that are both called
    inference.json never share a directory; pass the path relative to the project, so that
    the name is the same on every checkout. Otherwise the model id with ``/`` as ``--``, plus
    ``__<adapter>`` when an adapter is used (``Qwen--Qwen3-4B-Instruct-2507__ckpt--run1``), plus
    ``+<digest>`` of ``variant`` when it is not empty: the settings that change what the model
    writes (sampling, context length, dtype, ...) where they differ from the defaults, so that
    a run at temperature 0.7 is not compared with a greedy one.
    Names longer than 120 characters are cut and suffixed with a hash of the full name, so
    two long names stay distinct.
    """
    if generations:
        # The file's own name, whichever separator the path was written with.
        parts = [p for p in re.split(r"[/\\]+", generations) if p not in ("", ".")]
        key = "/".join(parts)
        slug = "replay-" + _slugify(Path(parts[-1] if parts else "").stem) + "-" + _digest(key)
        full = key
    elif model:
        slug = _name_part(model)
        if adapter:
            slug += "__" + _name_part(adapter)
        full = f"{model}\0{adapter or ''}"
        if variant:
            settings = json.dumps(dict(variant), sort_keys=True, default=str)
            slug += "+" + _digest(settings)
            full += "\0" + settings
    else:
        raise ValueError("a snapshot directory needs a model name or a generations file")
    if len(slug) > _MAX_SLUG:
        slug = slug[: _MAX_SLUG - 9].rstrip("._-") + "-" + _digest(full)
    if not slug or slug.startswith("replay--"):
        raise ValueError(f"cannot build a directory name from {generations or model!r}")
    return slug


def _digest(text: str) -> str:
    return sha256(text.encode()).hexdigest()[:8]


def normalise_content(code: str) -> str:
    """What is stored for an output: the extracted code, normalised so that reruns compare equal.

    - ``\\r\\n`` and lone ``\\r`` become ``\\n`` (text-mode readers, git and editors disagree
      about them otherwise);
    - trailing newlines are collapsed to exactly one, so every file ends with a newline and
      a model that adds or drops a final blank line does not count as a change;
    - characters UTF-8 cannot encode (lone surrogates from JSON escapes) are written as
      backslash escapes, so that what is written reads back equal.
    """
    text = code.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n") + "\n"
    return text.encode(TEXT_ENCODING, "backslashreplace").decode(TEXT_ENCODING)


def check_snapshot(
    snapshot: SnapshotAssertion, *, root: Path, task_id: str, fmt: str, slug: str, content: str
) -> SnapshotOutcome:
    """Compare one task's output with its stored snapshot.

    Returns ``"new"`` when no snapshot was stored (it is written; the test does not fail),
    ``"match"`` when it equals the stored one, ``"updated"`` when it differed and
    ``--snapshot-update`` was given (it is rewritten). Raises ``SnapshotMismatch`` with a
    unified diff when it differs and ``--snapshot-update`` was not given.
    """
    __tracebackhide__ = True
    assertion = dataclasses.replace(
        snapshot, extension_class=extension_for(root, slug, fmt), update_new_snapshots_only=True
    )
    data = normalise_content(content)
    matched = assertion(name=task_id) == data
    result = assertion.executions[assertion.num_executions - 1]
    if result.exception is not None:
        raise result.exception
    if result.created:
        return "new"
    if result.updated:
        return "updated"
    if matched:
        return "match"
    stored = result.recalled_data if isinstance(result.recalled_data, str) else ""
    diff = unified_diff(stored, data, result.snapshot_location)
    raise SnapshotMismatch(task_id=task_id, path=result.snapshot_location, diff=diff)


def unified_diff(stored: str, current: str, path: str, *, max_lines: int = 200) -> str:
    """``diff -u`` of the stored snapshot against the current output, capped at ``max_lines``."""
    name = Path(path).name
    lines = list(
        difflib.unified_diff(
            stored.splitlines(keepends=True),
            current.splitlines(keepends=True),
            fromfile=f"snapshot/{name}",
            tofile=f"current/{name}",
        )
    )
    text = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
        for line in lines[:max_lines]
    )
    if len(lines) > max_lines:
        text += f"... {len(lines) - max_lines} more diff lines\n"
    return text


def unused_snapshots(directory: str | os.PathLike[str], task_ids: Iterable[str]) -> list[Path]:
    """Snapshot files in ``directory`` whose task is not in ``task_ids`` (sorted).

    Pass the ids of the whole task file, not only the selected ones: a file is unused when
    its task no longer exists, not when ``-k``/``-m`` left it out of this run.
    """
    known = set(task_ids)
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(
        p
        for p in root.iterdir()
        if p.is_file()
        and p.suffix[1:] in FORMATS
        and not p.name.startswith(".")
        and p.stem not in known
    )
