"""Write the replay records that testing/data/test_replay_records.py compares against.

A record is what report.json says (its ``summary`` and ``tasks``; never ``meta``: timings,
versions, paths) when the plugin replays one generations file, with the answer texts replaced
by their hashes. Records exist for the bundled set's reference answers (always) and for every
``*.json`` in ../shared/data/inference/ against ../shared/data/public_150.json (when present).

Regenerate them all after a change that is meant to move scores, and read the diff: one line
per task, so it names the tasks that moved (from the project root)::

    python testing/data/make_replay_records.py
    git diff --stat testing/data/replay_records/

``python testing/data/make_replay_records.py scored_0.77064`` rewrites only the named records.

What a record keeps: the scorer's own results (scores, syntax_ok, key paths, reasons, error
line and column, ...). What it does not keep: the shared files are not ours to copy into the
project, so ``generation`` and ``code`` (the answer and the code extracted from it) are always
replaced by ``sha256:<first 16 hex digits>``, and so is any other string longer than ``LONGEST_TEXT``
characters: parsers quote the answer in some messages (tomli's "What? x already exists?{...}"
dumps the whole parsed document), in ``syntax_error.message`` and in the reason that repeats
it. Short messages are kept as they are (the parser's words, at most a quoted token).
``expected_paths`` and ``found_paths`` are hashed too, only to keep the records small (they
are most of a task's bytes): ``missing_paths``, ``key_score`` and the reasons stay readable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testing/, for support

from support import OPEN150, OPEN150_ANSWERS, SHARED_DATA, run_pytest

from pytest_structeval.files import CACHE_ENV

RECORDS = Path(__file__).resolve().parent / "replay_records"
SHARED_TASKS = SHARED_DATA / "public_150.json"
SHARED_INFERENCE = SHARED_DATA / "inference"
BUNDLED = "open150.answers"
# Fields that are the answer itself, hashed whatever their length.
ANSWER_FIELDS = ("generation", "code")
# Key path lists that are long and repeat what the record keeps readable elsewhere: the task's
# expected paths (the same in every file) and the found ones (expected less missing_paths).
PATH_LISTS = ("expected_paths", "found_paths")
# Longer strings are hashed: no parser message of the scorer's own is this long, quoted answers are.
LONGEST_TEXT = 120


@dataclass(frozen=True)
class Source:
    """One replay: a record ``name`` for ``generations`` replayed against ``tasks``."""

    name: str
    tasks: Path
    generations: Path
    shared: bool

    @property
    def record_path(self) -> Path:
        return RECORDS / f"{self.name}.json"


def bundled_source() -> Source:
    return Source(BUNDLED, OPEN150, OPEN150_ANSWERS, shared=False)


def shared_source(name: str) -> Source:
    return Source(name, SHARED_TASKS, SHARED_INFERENCE / f"{name}.json", shared=True)


def shared_sources() -> list[Source]:
    """Every generations file in ../shared/data/inference/; none where it is absent."""
    if not SHARED_TASKS.exists():
        return []
    return [shared_source(path.stem) for path in sorted(SHARED_INFERENCE.glob("*.json"))]


def sha256_text(text: str) -> str:
    """The first 16 hex digits of the text's sha256: enough to tell two texts apart, and a
    quarter of the bytes (four hashes a task are a third of a record)."""
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def without_long_text(value: Any) -> Any:
    if isinstance(value, str):
        return sha256_text(value) if len(value) > LONGEST_TEXT else value
    if isinstance(value, list):
        return [without_long_text(item) for item in value]
    if isinstance(value, dict):
        return {key: without_long_text(item) for key, item in value.items()}
    return value


def without_answers(task: dict[str, Any]) -> dict[str, Any]:
    """One report.json task with no copy of the answer's text in it."""
    kept = without_long_text(task)
    for field in ANSWER_FIELDS:
        if isinstance(task.get(field), str):
            kept[field] = sha256_text(task[field])
    for field in PATH_LISTS:
        if isinstance(task.get(field), list):
            kept[field] = sha256_text(json.dumps(task[field], ensure_ascii=False))
    return kept


def replay(source: Source) -> dict[str, Any]:
    """report.json of the plugin replaying ``source`` in a fresh process and directory (fresh,
    so that every snapshot is new and no cache is shared with the caller)."""
    with tempfile.TemporaryDirectory(prefix="structeval-replay-") as tmp:
        project = Path(tmp)
        run = run_pytest(
            project,
            "out",
            f"--tasks={source.tasks}",
            f"--generations={source.generations}",
            "-q",
            "-p",
            "no:randomly",
            env={CACHE_ENV: str(project / "cache")},
            timeout=600,
        )
        if not (run.out / "report.json").exists():
            raise RuntimeError(
                f"replaying {source.generations} wrote no report.json "
                f"(exit {run.returncode}):\n{run.output[-3000:]}"
            )
        return run.report


def record_of(source: Source, report: dict[str, Any]) -> dict[str, Any]:
    """What is recorded of ``report``: the inputs' names and hashes (so that a changed input
    file reads as such, not as a changed score), the summary, and the tasks without answers."""
    return {
        "inputs": {
            "tasks": source.tasks.name,
            "tasks_sha256": sha256_file(source.tasks),
            "generations": source.generations.name,
            "generations_sha256": sha256_file(source.generations),
        },
        "summary": report["summary"],
        "tasks": [without_answers(task) for task in report["tasks"]],
    }


def dumps(record: dict[str, Any]) -> str:
    """Sorted keys; the inputs and summary indented, each task on a line of its own, so that a
    diff names the tasks that changed."""
    head = {key: value for key, value in record.items() if key != "tasks"}
    tasks = ",\n".join(
        "  " + json.dumps(task, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        for task in record["tasks"]
    )
    text = json.dumps(head, sort_keys=True, ensure_ascii=False, indent=1)
    return f'{text[:-2]},\n "tasks": [\n{tasks}\n ]\n}}\n'


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "names",
        nargs="*",
        help=f"records to rewrite ({BUNDLED} or a file stem in {SHARED_INFERENCE}); default all",
    )
    args = parser.parse_args(argv)
    available = {source.name: source for source in [bundled_source(), *shared_sources()]}
    if not available.keys() - {BUNDLED}:
        print(f"note: {SHARED_TASKS} is absent; only {BUNDLED} is recorded", file=sys.stderr)
    unknown = [name for name in args.names if name not in available]
    if unknown:
        parser.error(f"no generations file for {unknown}; known: {sorted(available)}")
    RECORDS.mkdir(exist_ok=True)
    for name in args.names or sorted(available):
        source = available[name]
        text = dumps(record_of(source, replay(source)))
        before = source.record_path.read_text("utf-8") if source.record_path.exists() else None
        source.record_path.write_text(text, encoding="utf-8")
        state = "new" if before is None else "unchanged" if before == text else "CHANGED"
        print(f"{state:9} {source.record_path.relative_to(RECORDS.parents[2])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
