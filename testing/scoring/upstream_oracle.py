"""Upstream StructEval's non-renderable scoring, re-derived from ../shared/docs/scoring-spec.md.

The reference the parity tests hold ``score_task`` to: written from the spec alone, with the
stock parsers called as upstream calls them (``yaml.safe_load``, ``toml.loads``,
``xmltodict.parse``, ``csv.DictReader``), upstream's two regexes, its recursive path walk,
and no guard, budget or fast path of ours. Where upstream itself raises, this raises
``UpstreamCrash`` so that a test states what we decided instead.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import warnings

import toml
import xmltodict
import yaml

# Spec §1.2: BEGIN/END tags and a markdown fence, DOTALL | IGNORECASE, no MULTILINE.
TAGS = r"<\|BEGIN_CODE\|>[ \t]*\n?(.*?)(?:<\|END_CODE\|>|$)"
FENCE = r"```[^\n]*\n(.*?)(?:```|$)"
FLAGS = re.DOTALL | re.IGNORECASE


class UpstreamCrash(Exception):
    """Upstream raises on this input instead of scoring it."""


def extract(generation: str) -> str:
    """Spec §1.1-§1.2 and §7 step 3 (the text-mode file round trip)."""
    text = generation.replace("&lt;", "<").replace("&gt;", ">")
    text = text.replace("<think>\n\n</think>\n\n", "")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            text = codecs.decode(text, "unicode_escape")
    except Exception:
        pass
    found = re.search(f"{TAGS}|{FENCE}", text, FLAGS)
    if found:
        payload = found.group(1) or found.group(2)
        if payload is None:
            raise UpstreamCrash("AttributeError: empty <|BEGIN_CODE|> payload")
        code = payload.strip()
    else:
        code = text.strip()
    fence = re.search(FENCE, text, FLAGS)
    if fence:
        code = fence.group(1).strip()
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UpstreamCrash("UnicodeEncodeError writing the code file") from exc
    return code.replace("\r\n", "\n").replace("\r", "\n")


def load(code: str, fmt: str) -> object:
    if fmt == "json":
        return json.loads(code)
    if fmt == "yaml":
        return yaml.safe_load(code)
    if fmt == "toml":
        return toml.loads(code)
    if fmt == "xml":
        return xmltodict.parse(code)
    reader = csv.DictReader(io.StringIO(code))
    return {"csv_headers": reader.fieldnames, "csv_rows": list(reader)}


def render(code: str, fmt: str) -> bool:
    """Spec §2.2: no exception and a truthy result; a CSV reader is never iterated here."""
    if fmt == "csv":
        return True
    try:
        return bool(load(code, fmt))
    except Exception:
        return False


def tokens(path: str) -> list[str]:
    """Spec §3.1."""
    if path.startswith("csv::"):
        return [path]
    out, buf, quoted, i = [], "", False, 0
    while i < len(path):
        char = path[i]
        if char == "`":
            quoted = not quoted
        elif char == "." and not quoted:
            if buf:
                out.append(buf)
            buf = ""
        elif char == "[" and not quoted:
            if buf:
                out.append(buf)
            buf = ""
            close = path.index("]", i)  # ValueError: upstream raises on an unclosed "[" too
            out.append(path[i : close + 1])
            i = close
        else:
            buf += char
        i += 1
    if buf:
        out.append(buf)
    return out


def exists(node: object, rest: list[str]) -> bool:
    """Spec §3.2, recursively as upstream walks."""
    if not rest:
        return True
    token, rest = rest[0], rest[1:]
    if isinstance(node, dict) and "csv_headers" in node and token.startswith("csv::"):
        if node["csv_headers"] is None:
            raise UpstreamCrash("TypeError: csv:: path on a CSV without a header row")
        return token[5:] in node["csv_headers"] and not rest
    if token == "*":
        return isinstance(node, list) and any(exists(item, rest) for item in node)
    if token.startswith("[") and token.endswith("]"):
        try:
            index = int(token[1:-1])
        except ValueError:
            return False
        return isinstance(node, list) and 0 <= index < len(node) and exists(node[index], rest)
    if isinstance(node, dict):
        if token in node:
            return exists(node[token], rest)
        if token.startswith("@") and token[1:] in node:
            return exists(node[token[1:]], rest)
    return False


def score(output_type: str, generation: str, paths: tuple[str, ...]) -> float:
    """Spec §4.1: round(0.2*render + 0.8*keys, 2); keys only when render is 1."""
    fmt = output_type.lower()
    code = extract(generation)
    rendered = render(code, fmt)
    keys = 0.0
    if rendered and paths:
        try:
            value = load(code, fmt)
        except Exception:  # e.g. a CSV field over csv's field limit: upstream's keys are 0
            pass
        else:
            keys = sum(exists(value, tokens(p)) for p in paths) / len(paths)
    return round(0.2 * rendered + 0.8 * keys, 2)
