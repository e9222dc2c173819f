"""Compare several runs: ``python -m pytest_structeval.compare RUN RUN [RUN ...]``.

Each RUN is a report.json (or the --out directory holding one). Prints a row per run and the
tasks where the runs disagree; ``--out PAGE.html`` also writes the self-contained page and
``--json FILE`` the comparison as data. Exit status 0, or 2 with one ``error:`` line when a
report cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .files import dump_json, write_atomic
from .report.runs import CompareError, compare_runs, load_runs, render_comparison_html


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_structeval.compare",
        description="Compare the report.json files of several pytest-structeval runs.",
    )
    parser.add_argument(
        "reports", nargs="+", metavar="RUN", help="report.json, or the directory holding it"
    )
    parser.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="NAME",
        help="a name per run, in order (default: model + adapter from each report)",
    )
    parser.add_argument(
        "--reference",
        type=int,
        default=1,
        metavar="N",
        help="the run the others are compared against, by position (default: 1, the first)",
    )
    parser.add_argument("--out", type=Path, default=None, metavar="PAGE", help="write the page")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the data")
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.reports, labels=args.label)
        comparison = compare_runs(runs, reference=args.reference - 1)
    except CompareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("\n".join(comparison.lines()))
    if args.out is not None:
        write_atomic(args.out, render_comparison_html(comparison))
        print(f"page: {args.out}")
    if args.json is not None:
        write_atomic(args.json, dump_json(comparison.to_dict()))
        print(f"data: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
