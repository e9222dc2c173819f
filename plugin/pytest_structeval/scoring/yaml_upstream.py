"""YAML parsed exactly as upstream parses it: PyYAML's pure-Python ``yaml.safe_load`` (issue 10).

Upstream calls ``yaml.safe_load``, the pure-Python SafeLoader; libyaml's CSafeLoader accepts
tabs and other text that it rejects (``name: Faro Airport Branch\\t`` fails upstream), so only
the pure-Python grammar is used here. It costs about 5 us per YAML token, which would spend
the whole 150-task scoring budget on YAML alone, so most documents take a fast path that is
the same function, not an approximation:

* ``_block_document`` reads *plain block documents* line by line: block mappings and sequences
  (indentless ones included) whose keys and values are one-line plain or quoted scalars,
  comments, blank lines. For those it builds the node tree PyYAML's composer builds (same
  nodes, tags from the same resolver) and PyYAML's own SafeConstructor turns it into the value.
  It also proves one common rejection: a plain scalar on its own line where the scanner
  requires a simple key ("could not find expected ':'", a truncated last line), raised with the
  marks the scanner would give.
* Anything else (a tab anywhere, flow collections, anchors, tags, block scalars, multi-line
  scalars, document markers, irregular indentation, ...) returns ``NOT_BLOCK`` before anything
  is decided, and the pure-Python loader parses the text from the start.

Equivalence is tested against PyYAML's stock SafeLoader on every real answer in ../shared/data,
on perturbations of the bundled answers and on generated block-YAML-like text (testing/scoring/
test_yaml_upstream.py), values, errors, marks and token counts alike.

Cost (see ``cost.py``): the loader charges every character of the text, every token it scans
and every key/value pair merge keys will copy; the fast path charges the same amounts, so a
document is refused on the same work whichever path reads it.
"""

from __future__ import annotations

import re

import yaml
from yaml.error import Mark
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.scanner import ScannerError

from .cost import WORK_BUDGET, TooCostly, WorkMeter

# Work units (cost.py) of the pure-Python loader, measured on token-dense flow and block text
# (scan, parse, compose, construct) and on long scalars and comments (per character).
TOKEN_COST = 7.0
CHAR_COST = 0.2
# Per key/value pair a merge key copies (flatten_mapping, then construct_mapping).
PAIR_COST = 0.5


class UpstreamLoader(yaml.SafeLoader):
    """PyYAML's pure-Python SafeLoader, unchanged, with a work meter."""

    # The scanner takes its first mark before it sets this (class default until then).
    tokens_taken = 0

    def __init__(self, text: str, budget: float = WORK_BUDGET) -> None:
        self.meter = WorkMeter("the YAML parse", budget)
        # A parse that succeeds reads every character; one that fails scores 0 either way.
        self.meter.charge(len(text) * CHAR_COST)
        self._tokens_charged = 0
        self._may_merge = "<<" in text or "merge" in text
        super().__init__(text)

    def load(self) -> object:
        """``get_single_data()`` (same steps, same stack depth), with the work charged: every
        token scanned, and the pairs merge keys will copy before they are copied."""
        node = self.get_single_node()
        self._charge_tokens()
        if node is None:
            return None
        self.charge_merges(node)
        return self.construct_document(node)

    def charge_merges(self, root: Node) -> None:
        # Merge keys copy pairs: a chain of merges copies quadratically many, a merge of the
        # same anchor twice per level exponentially many (counted before any is copied).
        if self._may_merge:
            self.meter.charge(merge_copies(root, self.meter.budget / PAIR_COST) * PAIR_COST)

    def get_mark(self) -> Mark:
        # The scanner takes marks for the tokens it produces; charging here rather than
        # around fetch_more_tokens adds no frame to the composer's recursion, so deep
        # documents hit the recursion limit exactly where upstream's loader does.
        self._charge_tokens()
        return Mark(self.name, self.index, self.line, self.column, self.buffer, self.pointer)

    def _charge_tokens(self) -> None:
        produced = self.tokens_taken + len(self.tokens)
        if produced > self._tokens_charged:
            self.meter.charge((produced - self._tokens_charged) * TOKEN_COST)
            self._tokens_charged = produced


_MERGE_TAG = "tag:yaml.org,2002:merge"


def merge_copies(root: Node, cap: float) -> float:
    """An upper bound (repeated keys not dropped) of the key/value pairs SafeConstructor's
    ``flatten_mapping`` copies for the document under ``root``; stops counting past ``cap``."""
    sources: dict[int, list[MappingNode]] = {}
    own: dict[int, int] = {}
    stack: list[Node] = [root]
    seen: set[int] = set()
    while stack:  # every node once: aliases share nodes
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend(node.value)
        elif isinstance(node, MappingNode):
            refs: list[MappingNode] = []
            for key, value in node.value:
                stack.extend((key, value))
                if key.tag == _MERGE_TAG:
                    if isinstance(value, MappingNode):
                        refs.append(value)
                    elif isinstance(value, SequenceNode):
                        refs.extend(v for v in value.value if isinstance(v, MappingNode))
            sources[id(node)] = refs
            own[id(node)] = len(node.value)
    size: dict[int, float] = {}
    visiting: set[int] = set()
    total = 0.0
    for start in sources:  # flattened sizes, each source before the mappings merging it
        todo = [start]
        while todo:
            key = todo[-1]
            if key not in visiting:
                visiting.add(key)
                todo.extend(id(ref) for ref in sources[key] if id(ref) not in visiting)
                continue
            todo.pop()
            if key in size:
                continue
            # A source still being sized is a recursive anchor: counted as empty here, and
            # PyYAML recurses out of it (RecursionError) as it does upstream.
            copied = sum(size.get(id(ref), 0.0) for ref in sources[key])
            size[key] = min(own[key] + copied, cap)
            total += copied
            if total > cap:
                return total
    return total


def safe_load(text: str, budget: float = WORK_BUDGET) -> object:
    """``yaml.safe_load(text)`` as upstream computes it; raises what it raises, plus
    ``TooCostly`` past ``budget`` and ``RecursionError`` where PyYAML's composer recurses too
    deep (as it does upstream)."""
    loader = UpstreamLoader(text, budget)
    block = _block_document(loader, text)
    if block is NOT_BLOCK:
        # A fresh loader: the lines the fast path read before giving up are charged once, by
        # the pure loader, as on a document that never took the fast path.
        return UpstreamLoader(text, budget).load()
    _tokens, node = block
    if node is None:
        return None
    loader.charge_merges(node)
    try:
        return loader.construct_document(node)
    except TooCostly:
        raise
    except Exception:
        # A constructor error (a bad timestamp, a merge of a scalar) names node marks, which
        # the fast path does not keep: let the pure loader raise it with its marks.
        return UpstreamLoader(text, budget).load()


# ---------------------------------------------------------------- the plain block fast path

NOT_BLOCK = object()
# Characters whose rules (tabs, other line breaks, a BOM past the start) the fast path leaves
# to the scanner.
_NOT_HANDLED = re.compile("[\t\r\x85\u2028\u2029\ufeff]")
_DOCUMENT_MARKER = re.compile(r"^(?:---|\.\.\.)(?: |$)", re.MULTILINE)
# A one-line plain scalar in block context (PyYAML's check_plain and scan_plain): it may not
# start with an indicator (``-?:`` only when a non-space follows), ends before `` #`` (a
# comment), before ``:`` followed by a space or the line end, and drops trailing spaces.
_CHUNK = r"(?:[^ :]|:(?=[^ ]))"
_PLAIN = rf"(?:[^ \-?:,\[\]{{}}#&*!|>'\"%@`]|[-?:](?=[^ ])){_CHUNK}*+(?: +(?!#){_CHUNK}++)*+"
_SCALAR = re.compile(rf"'(?P<sq>(?:[^']|'')*+)'|\"(?P<dq>[^\"\\]*+)\"|(?P<plain>{_PLAIN})")
_KEY_COLON = re.compile(r" *:(?: +|$)")
_LINE_END = re.compile(r"(?: +#.*| *)")
# A simple key longer than this is dropped by the scanner (1024 characters); stay below it.
_MAX_KEY_SPAN = 1000
# The pure loader's composer recurses twice per level and fails near 490 levels (it does
# upstream); deep documents go to it so that its verdict stands.
_MAX_DEPTH = 100


class _Block:
    __slots__ = ("col", "indentless", "key", "kind", "node", "pending")

    def __init__(self, kind: str, col: int, node: Node, indentless: bool = False) -> None:
        self.kind = kind  # "map" or "seq"
        self.col = col
        self.node = node
        self.pending = False  # the last key or entry still waits for its value
        self.key: ScalarNode | None = None
        self.indentless = indentless


def _scalar_at(line: str, pos: int) -> tuple[str, str | None, int] | None:
    """(value, style, end) of the scalar starting at ``pos`` (style None for plain), or None."""
    found = _SCALAR.match(line, pos)
    if found is None:
        return None
    if found.group("plain") is not None:
        return found.group("plain"), None, found.end()
    if found.group("sq") is not None:
        return found.group("sq").replace("''", "'"), "'", found.end()
    return found.group("dq"), '"', found.end()


def _block_document(loader: UpstreamLoader, text: str) -> object:
    """(token count, root node or None) for a plain block document, ``NOT_BLOCK`` otherwise.

    Charges ``loader``'s meter for the tokens the scanner would produce, line by line, so that
    a document too costly for the pure loader is stopped here as early. Raises the scanner's
    ``ScannerError`` for a plain scalar line where a simple key is required, as the
    pure-Python scanner would.
    """
    if _NOT_HANDLED.search(text) or _DOCUMENT_MARKER.search(text):
        return NOT_BLOCK
    resolve = loader.resolve
    map_tag = resolve(MappingNode, None, True)
    seq_tag = resolve(SequenceNode, None, True)

    def scalar_node(value: str, style: str | None) -> ScalarNode:
        implicit = (True, False) if style is None else (False, True)
        return ScalarNode(resolve(ScalarNode, value, implicit), value, style=style)

    def new_block(is_entry: bool, col: int) -> _Block:
        if is_entry:
            return _Block("seq", col, SequenceNode(seq_tag, [], flow_style=False))
        return _Block("map", col, MappingNode(map_tag, [], flow_style=False))

    def fill(block: _Block, node: Node) -> None:
        """Give the pending key or entry of ``block`` its value."""
        if block.kind == "map":
            block.node.value.append((block.key, node))
        else:
            block.node.value.append(node)
        block.pending = False

    def finish(block: _Block) -> None:
        if block.pending:
            fill(block, scalar_node("", None))  # an empty value is a null plain scalar

    stack: list[_Block] = []
    root: Node | None = None
    tokens = 2  # STREAM-START, STREAM-END
    charged = 0
    lines = text.split("\n")
    offset = 0
    for number, line in enumerate(lines):
        start, offset = offset, offset + len(line) + 1
        pos = len(line) - len(line.lstrip(" "))
        if pos == len(line) or line[pos] == "#":
            continue  # blank or comment line: the scanner skips it
        col = pos
        dashes: list[int] = []
        while line.startswith("-", pos) and (pos + 1 == len(line) or line[pos + 1] == " "):
            dashes.append(pos)
            if len(dashes) > _MAX_DEPTH:
                return NOT_BLOCK
            pos = len(line) - len(line[pos + 1 :].lstrip(" "))
        body_col = pos
        key = value = None
        if pos < len(line) and not (dashes and line[pos] == "#"):
            first = _scalar_at(line, pos)
            if first is None:
                return NOT_BLOCK
            colon = _KEY_COLON.match(line, first[2])
            if colon is None:
                value, pos = first, first[2]
            else:
                if colon.end() - pos > _MAX_KEY_SPAN:
                    return NOT_BLOCK
                key, pos = first, colon.end()
                # The colon took the spaces after it, so a "#" here starts a comment.
                if pos < len(line) and line[pos] != "#":
                    value = _scalar_at(line, pos)
                    if value is None:
                        return NOT_BLOCK
                    pos = value[2]
            if (value is not None or colon is None) and not _LINE_END.fullmatch(line, pos):
                return NOT_BLOCK

        # Finish the blocks this line is left of; an indentless sequence ends at a non-entry.
        while stack and (
            stack[-1].col > col or (stack[-1].indentless and stack[-1].col == col and not dashes)
        ):
            finish(stack.pop())
        top = stack[-1] if stack else None

        if not dashes and key is None:  # a bare scalar line
            assert value is not None
            if top is None and root is None:
                root = scalar_node(value[0], value[1])
                tokens += 1
                continue  # charged at the end: any further content line falls back
            if top is not None and top.col == col and value[1] is None:
                error = _required_key_error(loader, lines, number, start, col, value[2])
                if error is not None:
                    raise error
            return NOT_BLOCK

        is_entry = bool(dashes)  # the line starts with an entry, else with a key, at col
        if top is None:
            if root is not None:
                return NOT_BLOCK  # content after the root block ended
            top = new_block(is_entry, col)
            root = top.node
            stack.append(top)
            tokens += 2
        elif top.col == col:
            if is_entry and top.kind == "map" and top.pending:
                indentless = _Block("seq", col, SequenceNode(seq_tag, [], flow_style=False), True)
                fill(top, indentless.node)
                stack.append(indentless)
                top = indentless
            elif is_entry != (top.kind == "seq"):
                return NOT_BLOCK
            else:
                finish(top)
        elif col > top.col and top.pending:
            nested = new_block(is_entry, col)
            fill(top, nested.node)
            stack.append(nested)
            top = nested
            tokens += 2
        else:
            return NOT_BLOCK

        if is_entry:
            top.pending = True
            tokens += 1  # BLOCK-ENTRY
            for dash in dashes[1:]:
                nested = new_block(True, dash)
                fill(top, nested.node)
                stack.append(nested)
                top = nested
                top.pending = True
                tokens += 3
            if key is not None:
                nested = new_block(False, body_col)
                fill(top, nested.node)
                stack.append(nested)
                top = nested
                tokens += 2
        if key is not None:
            top.key = scalar_node(key[0], key[1])
            top.pending = True
            tokens += 3  # KEY, SCALAR, VALUE
        if value is not None:
            fill(top, scalar_node(value[0], value[1]))
            tokens += 1
        if len(stack) > _MAX_DEPTH:
            return NOT_BLOCK
        loader.meter.charge((tokens - charged) * TOKEN_COST)
        charged = tokens
    while stack:
        finish(stack.pop())
    loader.meter.charge((tokens - charged) * TOKEN_COST)
    return tokens, root


def _mark(loader: UpstreamLoader, index: int, line: int, column: int) -> Mark:
    return Mark(loader.name, index, line, column, loader.buffer, index)


def _required_key_error(
    loader: UpstreamLoader, lines: list[str], number: int, start: int, col: int, end: int
) -> ScannerError | None:
    """What the scanner raises for the plain scalar at ``col`` of line ``number`` (ending at
    ``end``), which sits at the indentation of an open block, so the scanner requires it to be
    a simple key and fails when the line ends without ``:``; None where the fast path does not
    follow the scanner.

    Where it fails depends on what follows. After a trailing comment, at the next token;
    otherwise at the first non-space character after the line break (a comment line's ``#``
    included), where the plain scalar stopped. A content line right of ``col`` would continue
    the scalar instead (not followed).
    """
    line_text = lines[number]
    if end - col > _MAX_KEY_SPAN:
        return None
    trailing_comment = "#" in line_text[end:]
    index = start + len(line_text) + 1
    for later in range(number + 1, len(lines)):
        text = lines[later]
        indent = len(text) - len(text.lstrip(" "))
        if indent < len(text) and not (text[indent] == "#" and trailing_comment):
            if text[indent] != "#" and indent > col and not trailing_comment:
                return None
            problem = _mark(loader, index + indent, later, indent)
            break
        index += len(text) + 1
    else:
        problem = _mark(loader, len(loader.buffer) - 1, len(lines) - 1, len(lines[-1]))
    return ScannerError(
        "while scanning a simple key",
        _mark(loader, start + col, number, col),
        "could not find expected ':'",
        problem,
    )
