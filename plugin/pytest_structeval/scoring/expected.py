"""Expected key paths for a task that carries no ``raw_output_metric`` (the competition case).

The hidden competition paths are StructEval-style, so they are reconstructed the way the
dataset was built (scoring-spec §3.3-3.4):

* Text->X: one path per numbered Feature Requirement. A requirement names a field (quoted,
  dotted, or "the X field") and then its containers from the inside out ("inside 'location',
  which is within 'ecosystem'"), with "first/second element of" marking list indices and
  "each element of" marking ``*``. Text->CSV requirements name the header columns.
* X->Y conversions: the leaf paths of the document inside ``<code>…</code>``, written in the
  target's conventions: dotted and indexed CSV headers become nested paths, XML wrapper
  elements around a repeated child collapse into a list, lists of objects are checked element by
  element (``[0]``, ``[1]``…) as upstream metrics index them. XML targets keep the source's root
  and the same element-by-element paths, matched with upstream semantics (``xmltodict.unparse``
  of the source writes a list as a repeated element, which is what ``[i]`` addresses; §3.3).
* Conversions to CSV check the header row (``csv::<column>``) and one ``csv_rows[i]`` path per
  source row. Upstream metrics only name headers, but the competition changed the paths (§5.1)
  and a conversion keeps the whole document: rows are the CSV's list elements, checked one by one
  like list elements in every other target, and ``csv_rows[i]`` is how a path addresses them in
  upstream's CSV object (§3.3). A header-only answer to a source with data is a partial conversion.

Path sets stay modest (leaves only, no values, lists of scalars checked as one key), because the grader checks existence
only and a bloated set would dilute the keys a model is actually judged on.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

from ..tasks import Task
from .formats import parse
from .paths import CSV_PREFIX, PathSyntaxError, tokenize_path

# An XML target whose root element cannot be known from the source (a CSV source whose headers
# share no first name, or a document with several top-level keys): paths start with this token.
# The grader's paths are fixed strings that name some root, so no reading of them binds to the
# root a model picks: such a path is not found in the score, and the credit it would earn with the
# model's root bound is the interval's upside (``TaskScore.unwrapped_key_score``).
ANY_ROOT = "<root>"
# Document elements that name nothing of the source: a model asked to turn a mapping into XML
# must pick one root element, and converters pick ``root`` (dicttoxml, json2xml), ``xml`` or
# ``data``; ``code`` echoes the ``<code>`` tag the query wraps the source in. Derived paths
# start with the source's own root, so the scorer looks through one of these around it.
PLACEHOLDER_ROOTS = frozenset({"root", "xml", "code", "data", "document"})
# Upstream's CSV object is {"csv_headers": [...], "csv_rows": [...]} (spec §3.3).
CSV_ROWS = "csv_rows"

_CODE = re.compile(r"<code>(.*)</code>", re.DOTALL | re.IGNORECASE)
_CODE_OPEN = re.compile(
    r"<code>(.*)", re.DOTALL | re.IGNORECASE
)  # some queries never close the tag
_REQUIREMENTS = re.compile(r"Feature Requirements:?(.*)", re.DOTALL | re.IGNORECASE)
_NUMBERED = re.compile(r"(?:^|\n|\\n)\s*\d+[.)]\s+(.*?)(?=(?:\n|\\n)\s*\d+[.)]\s+|\Z)", re.DOTALL)

_IDENT = r"[A-Za-z_][\w\-]*"
_PATHLIKE = r"[A-Za-z_][\w\-]*(?:\.(?:[A-Za-z_][\w\-]*|\*)|\[\d+\])*"
_QUOTED = re.compile(rf"""['"`]({_PATHLIKE})['"`](?!s\b)""")
_DOTTED = re.compile(r"\b([A-Za-z_]\w*(?:\.(?:[A-Za-z_]\w*|\*)|\[\d+\])+)")
_NAMED_FIELD = re.compile(
    rf"\b(?:the|each|every)\s+({_IDENT})\s+(?:field|key|element|attribute|property|entry|tag|value|column)s?\b",
    re.IGNORECASE,
)
_FIELD_NAMED = re.compile(
    rf"\b(?:field|key|element|attribute|property|column)\s+({_IDENT})\b(?!')", re.IGNORECASE
)
_CONTAINER = re.compile(
    rf"\b(?:the\s+)?({_IDENT})\s+(?:object|list|array|node|section|table|element|dictionary|map|block|entry|entries|items)\b",
    re.IGNORECASE,
)
_BARE_AFTER_PREP = re.compile(
    rf"\b(?:within|inside|under|in|of|into|beneath|below|from|at)\s+(?:the\s+)?({_IDENT})\b(?!')",
    re.IGNORECASE,
)
# A requirement that opens with a snake_case or camelCase identifier names that column.
_LEADING_COLUMN = re.compile(r"([a-z][a-z0-9]*(?:_[A-Za-z0-9]+)+|[a-z]+(?:[A-Z][a-z0-9]*)+)\b")
_ORDINALS = {"first": "[0]", "initial": "[0]", "second": "[1]", "third": "[2]", "fourth": "[3]"}
_EACH = re.compile(r"\b(?:each|every|all)\b", re.IGNORECASE)
_ORDINAL = re.compile(r"\b(first|initial|second|third|fourth)\b", re.IGNORECASE)
_STOP = {
    "the",
    "a",
    "an",
    "field",
    "key",
    "element",
    "attribute",
    "property",
    "object",
    "list",
    "array",
    "string",
    "number",
    "integer",
    "boolean",
    "float",
    "value",
    "values",
    "each",
    "every",
    "all",
    "first",
    "second",
    "third",
    "this",
    "that",
    "which",
    "it",
    "its",
    "is",
    "be",
    "as",
    "format",
    "top",
    "level",
    "root",
    "order",
    "iso",
    "e",
    "g",
    "i",
    "csv",
    "json",
    "yaml",
    "toml",
    "xml",
    "within",
    "inside",
    "under",
    "in",
    "of",
    "into",
    "beneath",
    "below",
    "from",
    "at",
    "on",
    "to",
    "for",
    "with",
    "and",
    "or",
    "nested",
    "located",
    "found",
    "present",
    "directly",
    "also",
    "should",
    "must",
    "may",
    "can",
    "will",
    "contains",
    "contain",
    "has",
    "have",
    "named",
    "called",
    "initial",
    "fourth",
    "item",
    "items",
    "entry",
    "entries",
    "part",
    "same",
}
# Examples are not structure: "(e.g., 'bronze')", "such as 'easy', 'medium', or 'hard'".
_EXAMPLES = re.compile(
    r"\([^()]*\)|\bsuch as\b[^,.;]*(?:,\s*(?:or\s+|and\s+)?['\"][^'\"]*['\"])*|\b(?:e\.g\.|i\.e\.|for example|like)[^.;]*",
    re.IGNORECASE,
)


def query_code(query: str) -> str | None:
    """The source document of a conversion query (the text between ``<code>`` and ``</code>``)."""
    found = _CODE.search(query) or _CODE_OPEN.search(query)
    return found.group(1) if found else None


def requirements(query: str) -> list[str]:
    """The numbered Feature Requirements of a Text->X query, one string each."""
    found = _REQUIREMENTS.search(query)
    if not found:
        return []
    return [" ".join(item.split()) for item in _NUMBERED.findall(found.group(1)) if item.strip()]


# ---------------------------------------------------------------- Text -> X


def _segments(path: str) -> list[str]:
    try:
        return tokenize_path(path)
    except PathSyntaxError:
        return [path]


def _is_index(token: str) -> bool:
    return token == "*" or (token.startswith("[") and token.endswith("]"))


def _merge(current: list[str], addition: list[str]) -> list[str]:
    """Append ``addition`` to ``current``, overlapping where it restates a known container."""
    if not addition:
        return current
    head = addition[0]
    for i in range(len(current) - 1, -1, -1):
        if current[i] == head:
            merged = current[:i] + addition
            # keep an index the requirement stated earlier ("first element of 'plants'")
            if (
                i + 1 < len(current)
                and _is_index(current[i + 1])
                and (len(addition) == 1 or not _is_index(addition[1]))
            ):
                merged = current[: i + 2] + addition[1:]
            return merged
    return current + addition


def _vocabulary(items: list[str]) -> set[str]:
    words: set[str] = set()
    for item in items:
        for pattern in (_QUOTED, _DOTTED):
            for found in pattern.finditer(item):
                words.update(t for t in _segments(found.group(1)) if not _is_index(t))
        for pattern in (_NAMED_FIELD, _FIELD_NAMED, _CONTAINER):
            words.update(found.group(1) for found in pattern.finditer(item))
    return {w for w in words if w.lower() not in _STOP}


def _mentions(item: str, vocab: set[str]) -> list[tuple[int, int, str]]:
    """Identifier mentions in a requirement: (start, end, path text), in reading order."""
    spans: list[tuple[int, int, str]] = []
    taken: list[tuple[int, int]] = []

    def add(start: int, end: int, text: str) -> None:
        if text.lower() in _STOP or text.lower() in ("e.g", "i.e"):
            return
        if any(s < end and start < e for s, e in taken):
            return
        taken.append((start, end))
        spans.append((start, end, text))

    for found in _QUOTED.finditer(item):
        add(found.start(1), found.end(1), found.group(1))
    for found in _DOTTED.finditer(item):
        if found.group(1).lower() not in ("e.g", "i.e"):
            add(found.start(1), found.end(1), found.group(1))
    for pattern in (_NAMED_FIELD, _FIELD_NAMED, _CONTAINER):
        for found in pattern.finditer(item):
            if found.group(1) in vocab:
                add(found.start(1), found.end(1), found.group(1))
    for found in _BARE_AFTER_PREP.finditer(item):
        if found.group(1) in vocab:
            add(found.start(1), found.end(1), found.group(1))
    return sorted(spans)


def requirement_path(item: str, vocab: set[str]) -> str | None:
    """One requirement -> one path; None when no field name can be found."""
    mentions = _mentions(item, vocab)
    if not mentions:
        return None
    (_, leaf_end, leaf), contexts = mentions[0], mentions[1:]
    leaf_each = bool(_EACH.search(item[: mentions[0][0]]))
    chain: list[list[str]] = []
    previous_end = leaf_end
    for start, end, text in contexts:
        segments = _segments(text)
        gap = item[previous_end:start]
        ordinal = _ORDINAL.search(gap)
        if segments and not _is_index(segments[-1]):
            if ordinal:
                segments.append(_ORDINALS[ordinal.group(1).lower()])
            elif _EACH.search(gap):
                segments.append("*")
        chain.append(segments)
        previous_end = end
    path: list[str] = []
    for segments in reversed(chain):  # containers are named from the inside out
        if path and segments == path[-len(segments) :]:
            continue
        path = _merge(path, segments)
    if leaf_each and path and not _is_index(path[-1]):
        path.append("*")
    path = _merge(path, _segments(leaf))
    return _render(path)


def _render(tokens: list[str]) -> str:
    out = ""
    for token in tokens:
        if token.startswith("[") and token.endswith("]"):
            out += token
        else:
            part = f"`{token}`" if ("." in token or "[" in token) else token
            out += ("." if out else "") + part
    return out


def _root(paths: list[list[str]]) -> str | None:
    """The document root: the name most requirements start from (Text->X tasks have one)."""
    counts: dict[str, int] = {}
    for tokens in paths:
        for token in set(tokens):
            if not _is_index(token):
                counts[token] = counts.get(token, 0) + 1
    if not counts:
        return None
    firsts = [t[0] for t in paths if t]
    best = max(
        counts,
        key=lambda t: (counts[t], firsts.count(t), -min(p.index(t) for p in paths if t in p)),
    )
    return best if counts[best] * 2 > len(paths) else None


def _anchor(tokens: list[str], root: str | None) -> list[str]:
    """Drop words misread before the root and put the root first when it was left implicit."""
    if root is None:
        return tokens
    if root in tokens:
        last = len(tokens) - 1 - tokens[::-1].index(root)
        return tokens[last:]
    return [root, *tokens]


def _generation_paths(task: Task) -> tuple[str, ...]:
    items = [_EXAMPLES.sub(" ", item) for item in requirements(task.query)]
    if task.fmt == "csv":
        names: list[str] = []
        for item in items:
            mentions = _mentions(item, _vocabulary([item]))
            if mentions:
                names.append(CSV_PREFIX + mentions[0][2])
            elif leading := _LEADING_COLUMN.match(item):
                # "artifact_id must be a unique ...": the requirement opens with the header name
                names.append(CSV_PREFIX + leading.group(1))
        return tuple(dict.fromkeys(names))
    vocab = _vocabulary(items)
    token_lists = [_segments(p) for item in items if (p := requirement_path(item, vocab))]
    root = _root(token_lists)
    paths: list[str] = []
    for tokens in token_lists:
        path = _render(_anchor(tokens, root))
        paths.append(_xml_target(path) if task.fmt == "xml" else path)
    return tuple(dict.fromkeys(paths))


def _xml_target(path: str) -> str:
    """XML paths are written as for JSON; ``xmltodict`` makes a repeated element a list, so
    ``a.b[0].c`` addresses the first of several ``<b>`` under ``<a>`` (spec §3.3)."""
    return path


# ---------------------------------------------------------------- X -> Y


def _parse_source(code: str, fmt: str) -> object:
    for candidate in (code, code.replace("\\n", "\n")):
        result = parse(candidate.strip(), fmt)
        if result.ok:
            return result.value
    return None


def _csv_source(code: str) -> tuple[list[str], int]:
    rows = list(csv.reader(io.StringIO(code.strip().replace("\\n", "\n"))))
    return (rows[0] if rows else []), max(len(rows) - 1, 0)


def _collapse_xml(value: object) -> object:
    """xmltodict view -> the JSON shape a converter is expected to produce (spec §3.4).

    ``<moons><moon>a</moon><moon>b</moon></moons>`` is ``{"moons": {"moon": [...]}}`` in
    xmltodict; the expected JSON is ``{"moons": [...]}``.
    """
    if isinstance(value, list):
        return [_collapse_xml(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, object] = {}
    for key, child in value.items():
        if isinstance(child, dict) and len(child) == 1:
            ((inner_key, inner),) = child.items()
            if isinstance(inner, list):
                child = inner
            elif key.lower().startswith(inner_key.lower()) and key.lower() != inner_key.lower():
                # <moons><moon>Echo</moon></moons>: a one-item list in the converted answer
                child = [inner]
        out[key] = _collapse_xml(child)
    return out


def leaf_paths(value: object, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Leaf paths of a document; every element of a list of objects counts (a conversion keeps them all)."""
    if isinstance(value, dict) and value:
        for key, child in value.items():
            yield from leaf_paths(child, (*prefix, str(key)))
    elif isinstance(value, list) and value and isinstance(value[0], (dict, list)) and value[0]:
        for index, item in enumerate(value):
            yield from leaf_paths(item, (*prefix, f"[{index}]"))
    elif prefix:
        yield prefix


def _records(value: object) -> list[object] | None:
    """The row list a CSV conversion flattens: the root list or the one list under the root."""
    for _ in range(3):
        if isinstance(value, list):
            return value
        if isinstance(value, dict) and len(value) == 1:
            (value,) = value.values()
            continue
        return None
    return None


def _row_paths(count: int, first_column: str) -> tuple[str, ...]:
    """One path per source data row: a converted CSV keeps every row (``csv_rows`` is upstream's
    list of data rows, §3.3), as list elements are checked one by one for other targets.

    Upstream reads the rows with ``csv.DictReader``, so a row is a mapping keyed by the header
    row: a row of the conversion is the row under the source's own column, addressed as
    ``csv_rows[i].<first column>``. Rows under renamed headers are not the source's rows (a
    grader whose paths name the source's columns finds nothing in them), so they earn nothing.
    """
    return tuple(f"{CSV_ROWS}[{i}].{_quote(first_column)}" for i in range(count))


def _quote(token: str) -> str:
    return f"`{token}`" if ("." in token or "[" in token) else token


def _csv_target(source: object) -> tuple[str, ...]:
    records = _records(source)
    if records and isinstance(records[0], dict):
        headers: dict[str, None] = {}
        for record in records[:1]:
            for path in leaf_paths(record):
                headers[".".join(t for t in path).replace(".[0]", "[0]")] = None
        if not headers:
            return ()
        return tuple(CSV_PREFIX + h for h in headers) + _row_paths(len(records), next(iter(headers)))
    if isinstance(source, dict):
        # one object flattened into one data row
        columns = [_render(list(p)).replace("`", "") for p in leaf_paths(source)]
        if not columns:
            return ()
        return tuple(CSV_PREFIX + c for c in columns) + _row_paths(1, columns[0])
    return ()


def _conversion_paths(task: Task) -> tuple[str, ...]:
    code = query_code(task.query)
    if code is None:
        return ()
    source_fmt = task.input_type.lower()
    target = task.fmt
    if source_fmt == "csv":
        headers, rows = _csv_source(code)
        headers = [h.strip() for h in headers if h.strip()]
        if target == "csv":
            return tuple(CSV_PREFIX + h for h in dict.fromkeys(headers)) + (
                _row_paths(rows, headers[0]) if headers else ()
            )
        tokens = [[t for t in _segments(h) if t] for h in headers]
        if target == "xml":
            tokens = [t for t in tokens if t]
            firsts = {t[0] for t in tokens}
            if len(firsts) == 1 and all(len(t) > 1 for t in tokens):
                # every header opens with one name (``galaxy.name``, ``galaxy.type``…): the
                # source names its document element, as a one-key JSON source does
                return tuple(dict.fromkeys(_xml_target(_render(t)) for t in tokens))
            return tuple(dict.fromkeys(_xml_target(_render([ANY_ROOT, *t])) for t in tokens))
        return tuple(dict.fromkeys(_render(t) for t in tokens if t))
    source = _parse_source(code, source_fmt)
    if source is None:
        return ()
    if source_fmt == "xml" and target != "xml":
        source = _collapse_xml(source)
    if target == "csv":
        return _csv_target(source)
    paths = [list(p) for p in leaf_paths(source)]
    if target == "xml":
        if not (isinstance(source, dict) and len(source) == 1):
            paths = [[ANY_ROOT, *p] for p in paths]
        return tuple(dict.fromkeys(_xml_target(_render(p)) for p in paths))
    return tuple(dict.fromkeys(_render(p) for p in paths))


def expected_paths(task: Task) -> tuple[str, ...]:
    """The paths a task's answer is checked against: its own metric, else derived ones."""
    if task.raw_output_metric is not None:
        return task.raw_output_metric
    if task.kind == "generation":
        return _generation_paths(task)
    return _conversion_paths(task)
