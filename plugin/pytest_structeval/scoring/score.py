"""Score one generation for one task: the public scoring API (scoring-spec §4.1, §7).

``score = round(0.2 * syntax + 0.8 * keys, 2)`` where ``syntax`` is upstream's render score
(the code parses after extraction and is truthy) and ``keys`` the fraction of expected paths
found, 0 when the syntax check fails. Expected paths come from ``raw_output_metric`` when the
task carries it, else they are derived from the task (``expected.py``).

Pure: no pytest, no vLLM, no file or network access; any generation, however hostile, yields a
``TaskScore`` with reasons instead of an exception.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Literal

from ..tasks import Task
from .cost import STRICT_WORK_BUDGET
from .expected import ANY_ROOT, PLACEHOLDER_ROOTS, expected_paths
from .extract import ScoringMode, as_returned, extract_code, normalise_newlines
from .formats import ParseResult, SyntaxErrorInfo, parse, strict_verdict
from .paths import PathCheck, check_path

PathsSource = Literal["task", "derived"]
# Upstream's weights (spec §4.1): a task's score is ``task_score(syntax_ok, keys)``.
SYNTAX_WEIGHT = 0.2
KEY_WEIGHT = 0.8
# explain() lists at most this many missing paths; the full list is in to_dict().
EXPLAIN_MAX_PATHS = 8
# reason() (one line on the terminal) names at most this many missing paths, and this much of
# a parser's message: the rest is in explain().
HEADLINE_MAX_PATHS = 2
HEADLINE_MESSAGE_CHARS = 60
# What a truncated document most often fails with, per parser.
_TRUNCATION_HINTS = (
    "Expecting",
    "Unterminated",
    "unclosed token",
    "no element found",
    "end of stream",
    "unexpected end",
    "Unbalanced",
    "Key group not on a line by itself",
)


@dataclass(frozen=True)
class TaskScore:
    task_id: str
    task_name: str
    output_type: str
    kind: str
    score: float
    syntax_ok: bool
    strict_ok: bool
    key_score: float
    paths_source: PathsSource
    expected_paths: tuple[str, ...]
    found_paths: tuple[str, ...]
    missing_paths: tuple[str, ...]
    stripped: tuple[str, ...]
    syntax_error: SyntaxErrorInfo | None
    truncated: bool
    reasons: tuple[str, ...]
    code: str = field(repr=False)
    finish_reason: str = "unknown"
    mode: str = "upstream"
    # The code as the model wrote it (no unicode_escape step), from the same extraction, for
    # snapshots. Not in report.json ("code" is what was scored); "" in a score read back.
    document: str = field(default="", repr=False, compare=False)
    # Derived XML paths only: the key score if the document element were read as the model chose
    # it: a placeholder element (``<root>``, ``<code>``...) around one element looked through, a
    # root no source names (``ANY_ROOT`` paths) bound to the answer's. The grader's xmltodict
    # parse keeps the wrapper as a path level and its paths name a fixed root, so the score does
    # not credit either; the competition estimate's interval does (report/estimate.py).
    unwrapped_key_score: float | None = None

    @property
    def perfect(self) -> bool:
        return self.score >= 1.0

    def reason(self) -> str:
        """Why the score is below 1.0, in one short line (the details are in ``explain()``):
        ``not valid TOML (line 3, column 5: Expected '=')``, ``3 of 5 key paths (missing a.b,
        c.d and 1 more)``; ``, cut at max_tokens`` when the output was."""
        if self.perfect:
            return "every key path found"
        if not self.code:
            why = "no code in the generation"
        elif self.syntax_error is not None:
            error = self.syntax_error
            message = error.message.splitlines()[0] if error.message else "parse failed"
            if len(message) > HEADLINE_MESSAGE_CHARS:
                message = message[:HEADLINE_MESSAGE_CHARS] + "…"
            where = f"line {error.line}" if error.line is not None else ""
            if error.line is not None and error.column is not None:
                where += f", column {error.column}"
            why = f"not valid {self.output_type} ({where + ': ' if where else ''}{message})"
        elif not self.expected_paths:
            why = "no expected paths for this task"
        else:
            why = f"{len(self.found_paths)} of {len(self.expected_paths)} key paths"
            key_view = next((r for r in self.reasons if r.startswith("keys score 0: ")), None)
            if key_view is not None:
                why += f" ({key_view.removeprefix('keys score 0: ')})"
            elif self.missing_paths:
                shown = ", ".join(self.missing_paths[:HEADLINE_MAX_PATHS])
                more = len(self.missing_paths) - HEADLINE_MAX_PATHS
                why += f" (missing {shown}" + (f" and {more} more)" if more > 0 else ")")
        if self.finish_reason == "length":
            why += ", cut at max_tokens"
        elif self.truncated:
            why += ", output ended mid-document"
        return why

    def headline(self) -> str:
        """``score 0.60: 3 of 5 key paths (missing a.b, c.d and 1 more)``: the first line of a
        failing task's message, the one pytest's short summary shows."""
        return f"score {self.score:.2f}: {self.reason()}"

    def explain(self) -> str:
        """A few lines for a pytest failure: score, syntax error, missing paths, stripping."""
        lines = [
            f"{self.task_id} ({self.task_name}): score {self.score:.2f} "
            f"= {SYNTAX_WEIGHT}*syntax {int(self.syntax_ok)} + {KEY_WEIGHT}*keys {self.key_score:.2f} "
            f"[{len(self.found_paths)}/{len(self.expected_paths)} {self.paths_source} paths]"
        ]
        if self.syntax_error is not None:
            lines.append(f"  syntax error: {self.syntax_error}")
        if self.missing_paths:
            shown = ", ".join(self.missing_paths[:EXPLAIN_MAX_PATHS])
            more = len(self.missing_paths) - EXPLAIN_MAX_PATHS
            lines.append(f"  missing: {shown}" + (f" and {more} more" if more > 0 else ""))
        if self.stripped:
            validity = (
                "valid as returned"
                if self.strict_ok
                else "valid only after extraction"
                if self.syntax_ok
                else "invalid"
            )
            lines.append(f"  stripped: {', '.join(self.stripped)} ({validity})")
        if self.truncated:
            lines.append(
                f"  truncated: output ended mid-document (finish_reason {self.finish_reason})"
            )
        shown_above = ("syntax error", "missing", "valid only after extraction", "output ended")
        for reason in self.reasons:
            if not reason.startswith(shown_above):
                lines.append(f"  note: {reason}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        del data["document"]
        for key in ("expected_paths", "found_paths", "missing_paths", "stripped", "reasons"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> TaskScore:
        values = dict(data)
        error = values.get("syntax_error")
        values["syntax_error"] = SyntaxErrorInfo(**error) if isinstance(error, Mapping) else None
        for key in ("expected_paths", "found_paths", "missing_paths", "stripped", "reasons"):
            values[key] = tuple(values.get(key) or ())
        known = {f for f in cls.__dataclass_fields__} - {"document"}
        return cls(**{k: v for k, v in values.items() if k in known})  # type: ignore[arg-type]


def _looks_truncated(error: SyntaxErrorInfo | None, code: str, finish_reason: str) -> bool:
    if finish_reason == "length":
        return True
    if error is None:
        return False
    if (
        error.line is not None
        and error.line >= code.count("\n") + 1
        and any(hint.lower() in error.message.lower() for hint in _TRUNCATION_HINTS)
    ):
        return True
    return "no element found" in error.message or "unclosed token" in error.message


def _check(path: str, value: object, *, derived_xml: bool) -> PathCheck:
    """Upstream matching (spec §3.2-3.3) for every path, derived XML paths included.

    An XML answer is the ``xmltodict`` tree, so the first token must be the real root element
    (a generic ``<root>``/``<code>`` wrapper around ``<museum>`` fails ``museum.*`` paths), and a
    list token needs a repeated element at that spot (one ``<book>`` is a dict, so ``[0]`` fails;
    a ``<books><book>…`` wrapper is ``books.book``, not ``books[0]``). An ``ANY_ROOT`` path,
    derived where nothing names the root (CSV sources), is not found: the grader's path names
    some fixed root, and which one is unknown.
    """
    if derived_xml:
        return _check_derived_xml(path, value, bind_root=False)
    return check_path(value, path)


def _placeholder_child(value: object) -> dict[str, object] | None:
    """``{"root": {"museum": …}}`` -> ``{"museum": …}``; None for any other shape."""
    if not (isinstance(value, dict) and len(value) == 1):
        return None
    ((name, inner),) = value.items()
    if str(name).lower() in PLACEHOLDER_ROOTS and isinstance(inner, dict) and len(inner) == 1:
        return inner
    return None


def _unwrapped_keys(expected: tuple[str, ...], value: object) -> float | None:
    """Key score with the document element read as the model chose it; None where that changes
    nothing the score reads: a placeholder document element looked through, an ``ANY_ROOT``
    path bound to the answer's root element.

    A path that names the placeholder itself is checked as it stands."""
    inner = _placeholder_child(value)
    unbound = any(path.startswith(ANY_ROOT) for path in expected)
    if (inner is None and not unbound) or not expected:
        return None
    name = next(iter(value)) if inner is not None else None  # type: ignore[call-overload]

    def found(path: str) -> bool:
        if _check_derived_xml(path, value, bind_root=True).found:
            return True
        return (
            inner is not None
            and path.split(".", 1)[0] != name
            and _check_derived_xml(path, inner, bind_root=True).found
        )

    return sum(1 for path in expected if found(path)) / len(expected)


def _check_derived_xml(path: str, value: object, *, bind_root: bool) -> PathCheck:
    if path.startswith(ANY_ROOT):
        if not bind_root or not (isinstance(value, dict) and len(value) == 1):
            return PathCheck(False)
        value = next(iter(value.values()))
        path = path[len(ANY_ROOT) :].lstrip(".")
    return check_path(value, path)


def _strict_view(
    generation: str, code: str, parsed: ParseResult, fmt: str, mode: ScoringMode
) -> ParseResult:
    """The "valid as returned" view: what a strict consumer (json.loads on the reply) accepts.

    Most replies are the bare document, which the upstream parse has just read; the verdict
    is then derived from that parse rather than paid for twice.
    """
    text = normalise_newlines(as_returned(generation))
    if text == code:
        derived = parsed if mode == "strict" else strict_verdict(parsed, fmt)
        if derived is not None:
            return derived
    return parse(text, fmt, mode="strict", budget=STRICT_WORK_BUDGET)


def task_score(syntax_ok: bool, keys: float) -> float:
    """One task's score from its syntax verdict and the fraction of key paths found, rounded
    to two decimals as upstream rounds it."""
    return round(SYNTAX_WEIGHT * int(syntax_ok) + KEY_WEIGHT * keys, 2)


def score_task(
    task: Task,
    generation: str,
    *,
    mode: ScoringMode = "upstream",
    finish_reason: str = "unknown",
) -> TaskScore:
    """Score ``generation`` for ``task``; ``mode`` picks upstream (default) or strict parsing."""
    extraction = extract_code(generation, mode=mode)
    code = normalise_newlines(extraction.code)
    parsed: ParseResult = (
        parse(code, task.fmt, mode=mode)
        if extraction.failed is None
        else ParseResult(False, error=SyntaxErrorInfo(extraction.failed))
    )
    strict = _strict_view(generation, code, parsed, task.fmt, mode)
    paths_source: PathsSource = "task" if task.raw_output_metric is not None else "derived"
    expected = expected_paths(task)
    reasons: list[str] = []
    found: list[str] = []
    missing: list[str] = []
    derived_xml = paths_source == "derived" and task.fmt == "xml"
    keys_checked = parsed.ok and parsed.key_view_error is None
    for path in expected:
        hit = keys_checked and _check(path, parsed.value, derived_xml=derived_xml).found
        (found if hit else missing).append(path)
    keys = len(found) / len(expected) if keys_checked and expected else 0.0
    unwrapped = _unwrapped_keys(expected, parsed.value) if derived_xml and keys_checked else None
    score = task_score(parsed.ok, keys)
    truncated = _looks_truncated(parsed.error, code, finish_reason)

    if parsed.error is not None:
        reasons.append(f"syntax error: {parsed.error}")
    if not code:
        reasons.append("no code in the generation")
    if not expected:
        reasons.append("no expected paths for this task, so keys score 0")
    if parsed.key_view_error is not None:
        reasons.append(f"keys score 0: {parsed.key_view_error}")
    elif parsed.ok and missing:
        reasons.append(f"missing {len(missing)} of {len(expected)} paths")
    if extraction.decode_failed:
        reasons.append("unicode_escape decode failed and was skipped, as upstream does")
    if parsed.ok and not strict.ok:
        reasons.append(
            "valid only after extraction"
            if extraction.source != "whole"
            else "valid only under upstream parsing"
        )
    if truncated:
        reasons.append("output ended mid-document")

    return TaskScore(
        task_id=task.task_id,
        task_name=task.task_name,
        output_type=task.output_type,
        kind=task.kind,
        score=score,
        syntax_ok=parsed.ok,
        strict_ok=strict.ok,
        key_score=round(keys, 4),
        paths_source=paths_source,
        expected_paths=tuple(expected),
        found_paths=tuple(found),
        missing_paths=tuple(missing),
        stripped=extraction.stripped,
        syntax_error=parsed.error,
        truncated=truncated,
        reasons=tuple(reasons),
        code=code,
        finish_reason=finish_reason,
        mode=mode,
        document=extraction.document,
        unwrapped_key_score=None if unwrapped is None else round(unwrapped, 4),
    )
