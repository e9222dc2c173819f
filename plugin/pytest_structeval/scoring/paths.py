"""The ``raw_output_metric`` path grammar and matcher, with upstream semantics (spec §3).

Upstream (``eval_utils.py:tokenize_path`` / ``path_exists``) is a recursive search: ``*`` is
existential, so on a YAML alias bomb (a DAG of shared lists) ``a.*.*.*.*.x`` visits
exponentially many routes. Whether a path exists is whether the walk can reach the last token
from the root, a question about (node, token position) states; each state is visited once
here, so the answer is upstream's exactly and costs at most nodes x tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

CSV_PREFIX = "csv::"


class PathSyntaxError(ValueError):
    """A path with an unclosed ``[`` (upstream raises here too)."""


def tokenize_path(path: str) -> list[str]:
    """Split a metric path into tokens.

    ``csv::…`` is one token. Backticks toggle quoting and are dropped; outside quotes ``.``
    separates tokens (empty ones vanish) and ``[…]`` becomes its own token, brackets kept.
    """
    if path.startswith(CSV_PREFIX):
        return [path]
    tokens: list[str] = []
    buf: list[str] = []
    quoted = False
    i, n = 0, len(path)
    while i < n:
        char = path[i]
        if char == "`":
            quoted = not quoted
        elif not quoted and char == ".":
            if buf:
                tokens.append("".join(buf))
                buf = []
        elif not quoted and char == "[":
            if buf:
                tokens.append("".join(buf))
                buf = []
            close = path.find("]", i)
            if close < 0:
                raise PathSyntaxError(f"unclosed '[' in path {path!r}")
            tokens.append(path[i : close + 1])
            i = close
        else:
            buf.append(char)
        i += 1
    if buf:
        tokens.append("".join(buf))
    return tokens


@dataclass(frozen=True)
class PathCheck:
    found: bool
    error: str | None = None


def _index(token: str) -> int | None:
    try:
        return int(token[1:-1])
    except ValueError:
        return None


def check_path(data: object, path: str) -> PathCheck:
    """Walk ``path`` over ``data`` (upstream semantics), never raising."""
    try:
        tokens = tokenize_path(path)
    except PathSyntaxError as exc:
        return PathCheck(False, error=str(exc))
    n = len(tokens)
    stack: list[tuple[object, int]] = [(data, 0)]
    # Shared nodes (YAML aliases) are reached by many routes; the rest of the walk from a
    # (node, position) state does not depend on the route, so each state is walked once.
    seen: set[tuple[int, int]] = set()
    while stack:
        node, pos = stack.pop()
        if pos == n:
            return PathCheck(True)  # existence only: any value, even None, counts
        state = (id(node), pos)
        if state in seen:
            continue
        seen.add(state)
        token = tokens[pos]
        if isinstance(node, dict) and "csv_headers" in node and token.startswith(CSV_PREFIX):
            headers = node["csv_headers"]
            # Upstream raises TypeError on headers None (an empty CSV); treat as not found.
            if pos + 1 == n and isinstance(headers, list) and token[len(CSV_PREFIX) :] in headers:
                return PathCheck(True)
            continue
        if token == "*":
            if isinstance(node, list):
                # Reversed so the first element is tried first, as upstream's any() does.
                stack.extend((item, pos + 1) for item in reversed(node))
            continue
        if token.startswith("[") and token.endswith("]"):
            index = _index(token)
            if isinstance(node, list) and index is not None and 0 <= index < len(node):
                stack.append((node[index], pos + 1))
            continue
        if isinstance(node, dict):
            if token in node:
                stack.append((node[token], pos + 1))
            elif token.startswith("@") and token[1:] in node:
                stack.append((node[token[1:]], pos + 1))
    return PathCheck(False)


def path_exists(data: object, path: str) -> bool:
    """True when ``path`` exists in ``data``; an unclosed ``[`` is False."""
    return check_path(data, path).found
