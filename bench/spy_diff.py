"""Compare two py-spy recordings (``py-spy record --subprocesses --idle --format raw``) of the
same workload: where one process spends its extra samples against the other (issue 21).

    python bench/spy_diff.py spy_bare.txt spy_plugin.txt [--process EngineCore]
        [--anchor EngineCoreProc.run_busy_loop] [--depth 2]

Prints the samples of each process (by its title), then, inside the chosen process and below
the first frame whose name starts with ``--anchor``, the samples per call path ``--depth``
frames deep, for both files and their difference; and the leaf frames whose share grew most.
At ``--rate`` samples per second (py-spy's default 100; ``gpu_session.sh spy`` uses 40), a
sample is 1/rate seconds of one thread.
"""

from __future__ import annotations

import argparse
import collections
import re
from collections.abc import Iterator
from pathlib import Path

# A record is "frame;frame;... count": process frames carry a quoted command line that may
# hold newlines and semicolons, so records are found by their start ("process N:").
RECORD = re.compile(r"(process \d+:.*?) (\d+)\n(?=process \d+:|\Z)", re.S)


def records(path: Path) -> Iterator[tuple[list[str], int]]:
    for match in RECORD.finditer(path.read_text(encoding="utf-8", errors="replace")):
        frames, current, quoted = [], [], False
        for char in match[1]:
            if char == '"':
                quoted = not quoted
            if char == ";" and not quoted:
                frames.append("".join(current))
                current = []
            else:
                current.append(char)
        frames.append("".join(current))
        yield frames, int(match[2])


def frame_name(frame: str) -> str:
    """``function (file.py:line)`` with the file's directories dropped."""
    name, _, where = frame.rpartition(" (")
    return f"{name} ({where.rsplit('/', 1)[-1]}" if name else frame


def process_of(frames: list[str]) -> str:
    title = [f for f in frames if f.startswith("process ")][-1]
    return " ".join(title.split(":", 1)[1].split())[:80]


def calls(frames: list[str]) -> list[str]:
    return [frame_name(f) for f in frames if not f.startswith(("process ", "thread "))]


Samples = list[tuple[list[str], int]]


def below(samples: Samples, process: str, anchor: str) -> Iterator[tuple[list[str], int, int]]:
    """The call stacks of ``process`` that pass through ``anchor``: (stack, the anchor's index,
    samples)."""
    for frames, n in samples:
        if process not in process_of(frames):
            continue
        stack = calls(frames)
        at = next((i for i, f in enumerate(stack) if f.startswith(anchor)), None)
        if at is not None:
            yield stack, at, n


def paths_below(
    samples: Samples, process: str, anchor: str, depth: int
) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for stack, at, n in below(samples, process, anchor):
        counts[" > ".join(stack[at + 1 : at + 1 + depth]) or "(self)"] += n
    return counts


def leaves_below(samples: Samples, process: str, anchor: str) -> collections.Counter[str]:
    counts: collections.Counter[str] = collections.Counter()
    for stack, _, n in below(samples, process, anchor):
        counts[stack[-1]] += n
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("other", type=Path)
    parser.add_argument("--process", default="EngineCore")
    parser.add_argument("--anchor", default="EngineCoreProc.run_busy_loop")
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--rate", type=float, default=40.0)
    args = parser.parse_args()
    loaded = {path: list(records(path)) for path in (args.base, args.other)}  # parsed once
    for path, samples in loaded.items():
        per_process: collections.Counter[str] = collections.Counter()
        for frames, n in samples:
            per_process[process_of(frames)] += n
        print(f"{path.name}: samples per process")
        for title, n in per_process.most_common(6):
            print(f"  {n:7d}  {title}")
    base_samples, other_samples = loaded[args.base], loaded[args.other]
    base = paths_below(base_samples, args.process, args.anchor, args.depth)
    other = paths_below(other_samples, args.process, args.anchor, args.depth)
    b, o = sum(base.values()), sum(other.values())
    print(
        f"\nbelow {args.anchor} in {args.process}: {b} against {o} samples "
        f"({b / args.rate:.1f} s against {o / args.rate:.1f} s of one thread)"
    )
    for key in sorted(set(base) | set(other), key=lambda k: (-(base[k] + other[k]), k))[:20]:
        print(f"  {base[key]:6d} {other[key]:6d} {other[key] - base[key]:+6d}  {key[:150]}")
    base_leaves = leaves_below(base_samples, args.process, args.anchor)
    other_leaves = leaves_below(other_samples, args.process, args.anchor)
    print("\nleaf frames that grew most")
    grown = sorted(
        set(base_leaves) | set(other_leaves), key=lambda k: (base_leaves[k] - other_leaves[k], k)
    )
    for key in grown[:15]:
        print(f"  {base_leaves[key]:6d} {other_leaves[key]:6d}  {key[:150]}")


if __name__ == "__main__":
    main()
