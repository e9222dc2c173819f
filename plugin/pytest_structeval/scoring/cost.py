"""What a parse may cost, and how each parser's cost is counted (scoring-spec §2, issue 10).

Upstream has no limits; a scorer of model output needs some, because a hundred kilobytes can
keep a pure-Python parser busy for seconds (uiri toml: 6 s for a table header of quoted dotted
names, 12 s for ``a=x=x…``; 0.8 s for a 450-deep array over 25 kB) and a C parser can recurse
off the C stack. The rule here: nothing is refused for its length. A parse is refused when the
work it does passes ``WORK_BUDGET``, counted as it goes (YAML characters and tokens, the pairs
YAML merge keys copy; for uiri toml an upper bound of each line's decoding, charged before the
line is decoded) or, for the C parsers whose work is linear, estimated from the markup they will
visit (XML elements, CSV rows). A ``work unit`` is calibrated to
about a microsecond of CPU on the reference machine (2 vCPU, Python 3.11; see
``bench/bench_scoring.py --costs``), so the budget is about half a second of parsing: far above
any real answer (the costliest in ../shared/data, an 11 kB YAML, costs 9% of it; a 32k-token
generation of block YAML about half; docs/scoring.md has the shapes that do not fit) and low
enough that hostile text is stopped within the per-generation bound of 1 s.

Nesting is the other guard, counted outside strings, and only where it is provably harmless: a
depth that upstream's own parser cannot reach either.
"""

from __future__ import annotations

import re
import sys
from itertools import accumulate

import toml

# About half a second of parsing on the reference machine; see the module docstring.
WORK_BUDGET = 500_000.0
# The view "valid as returned" is informational, and score_task may have to parse a second
# text for it; half a budget keeps the two within the per-generation bound.
STRICT_WORK_BUDGET = WORK_BUDGET / 2


class TooCostly(Exception):
    """A parse stopped because it passed its work budget (not a ValueError on purpose: uiri
    toml turns ValueErrors raised inside its decoder into TomlDecodeError)."""

    def __init__(self, what: str, budget: float) -> None:
        super().__init__(f"{what} would cost more than the scorer's budget ({budget:,.0f} units)")


class WorkMeter:
    """A running work count that raises ``TooCostly`` past its budget."""

    def __init__(self, what: str, budget: float = WORK_BUDGET) -> None:
        self.what = what
        self.budget = budget
        self.spent = 0.0

    def charge(self, units: float) -> None:
        self.spent += units
        if self.spent > self.budget:
            raise TooCostly(self.what, self.budget)


# ---------------------------------------------------------------- nesting outside strings

# Strings as possessive "unrolled loops" (character runs, one group per escape): the regex
# engine then keeps no backtracking state per character or escape (a backtracking group per
# character takes 200 MB to match a 2 MB string).
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
# TOML strings (multi-line first) and comments; brackets inside them do not nest.
_TOML_NOT_STRUCTURE = re.compile(
    r'"""[^"\\]*+(?:(?:\\.|"(?!""))[^"\\]*+)*+"""'
    r"|'''.*?'''"
    r'|"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"'
    r"|'[^'\n]*'"
    r"|#[^\n]*",
    re.DOTALL,
)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_OPEN_CLOSE = str.maketrans({"[": "\x01", "{": "\x01", "]": "\x02", "}": "\x02"})
_DELTA = (0, 1, -1)


def nesting_depth(text: str, strings: re.Pattern[str], limit: int) -> int:
    """Deepest bracket nesting of ``text`` outside what ``strings`` matches, or 0 when the
    text holds too few brackets to pass ``limit``.

    Unbalanced closers are not clamped, which can only under-count; the callers reject only
    what is over the limit, so under-counting never rejects a document.
    """
    if text.count("[") + text.count("{") <= limit:
        return 0
    structure = strings.sub("", text)
    if structure.count("[") + structure.count("{") <= limit:
        return 0
    codes = _NOT_BRACKETS.sub("", structure).translate(_OPEN_CLOSE).encode("ascii")
    return max(accumulate(map(_DELTA.__getitem__, codes), initial=0))


# json's C scanner recurses on the C stack. Under the default recursion limit CPython raises
# RecursionError near depth 1000 (it does upstream too); with a raised limit it would recurse
# until the process crashes. No interpreter's default lets json get near this depth, so a
# document refused here is one upstream cannot parse either.
JSON_MAX_DEPTH = 10_000
# uiri toml spends at least two Python frames per array or inline-table level, so under
# CPython's default recursion limit of 1000 it cannot parse 500 levels: upstream fails there.
# Refusing early matters because each level re-walks the rest of the value.
TOML_MAX_DEPTH = 500


def json_depth(text: str) -> int:
    return nesting_depth(text, _JSON_STRING, JSON_MAX_DEPTH)


def toml_depth(text: str) -> int:
    return nesting_depth(text, _TOML_NOT_STRUCTURE, TOML_MAX_DEPTH)


# ---------------------------------------------------------------- estimates for linear parsers

# Measured per-item costs (work units) of the parsers whose work is linear in what they visit.
XML_ELEMENT_COST = 1.2  # expat + xmltodict callbacks per element or attribute
CSV_ROW_COST = 0.8  # csv.DictReader per row (the C reader is cheaper)
TOMLLIB_CHAR_COST = 0.5  # tomllib (pure Python) per character, its worst shape


def xml_cost(text: str) -> float:
    """An upper bound of xmltodict's work: every element starts with ``<`` and every
    attribute has ``=``."""
    return (text.count("<") + text.count("=")) * XML_ELEMENT_COST


def csv_cost(text: str) -> float:
    return (text.count("\n") + 1) * CSV_ROW_COST


def tomllib_cost(text: str) -> float:
    return len(text) * TOMLLIB_CHAR_COST


# ---------------------------------------------------------------- uiri toml, charged per line

# uiri toml 0.10.2 (what upstream runs) first walks every character in Python, then decodes
# line by line (multi-line arrays already joined into one line); several steps are quadratic
# in one line. Before each line is decoded, the decoder charges an upper bound of what
# decoding it costs (constants measured on the shapes named; bench/bench_scoring.py --hostile
# shows charged units against seconds).
_TOML_FIRST_PASS = 0.4  # per character of the document (the character walk)
_TOML_LINE = 0.1  # per character of a decoded line
_TOML_HEADER = 0.0015  # per (dot x character): quoted dotted table names are re-joined per dot
_TOML_UNESCAPE = 0.00002  # per (backslash x character): _unescape rebuilds the string per escape
_TOML_EQ_SPLIT = 0.003  # per ("=" x character): "a=x=x" is re-split once per "="
_TOML_MERGE = 0.003  # per (comma inside a string x comma): string arrays re-split per merge
_TOML_GROUP_SLICE = 0.00004  # per character squared: arrays of inline tables re-slice per step
_TOML_NESTED = 0.06  # per (level x character): each array level walks its text in Python
_TOML_INLINE_POP = 0.0002  # per comma squared: inline tables pop their first group each time
_TOML_INLINE_JOIN = 0.00001  # per (comma inside a string x character): groups are re-joined
_QUOTED = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"|\'[^\']*\'', re.DOTALL)
_MULTILINE_BASIC = re.compile(r'"""[^"\\]*+(?:(?:\\.|"(?!""))[^"\\]*+)*+"""', re.DOTALL)
_ARRAY_OF_INLINE_TABLES = re.compile(r"\[\s*\{")
_INLINE_TABLE_LINE = re.compile(r"^[ \t]*\{.*$", re.MULTILINE)
# After "=", what makes load_line take the value as it is.
_VALUE_STARTS = ("", " ", "\t", '"', "'", "[", "{")


def _commas_in_strings(text: str) -> int:
    if "," not in text or ('"' not in text and "'" not in text):
        return 0
    return sum(s.count(",") for s in _QUOTED.findall(text))


def _inline_table_cost(line: str) -> float:
    commas = line.count(",")
    return (
        commas * commas * _TOML_INLINE_POP
        + _commas_in_strings(line) * len(line) * _TOML_INLINE_JOIN
    )


def toml_line_cost(line: str, *, header: bool = False) -> float:
    """Upper bound of what uiri toml spends decoding one (joined) line."""
    n = len(line)
    cost = n * _TOML_LINE
    if header:
        if '"' in line or "'" in line:
            cost += line.count(".") * n * _TOML_HEADER
        return cost
    if "\\" in line:
        cost += line.count("\\") * n * _TOML_UNESCAPE
    equals = line.find("=")
    if line.count("=") > 1 and line[equals + 1 : equals + 2] not in _VALUE_STARTS:
        # load_line re-splits at each further "=" until the value reads as a number or date.
        cost += line.count("=") * n * _TOML_EQ_SPLIT
    if "[" in line:
        cost += _commas_in_strings(line) * line.count(",") * _TOML_MERGE
        if _ARRAY_OF_INLINE_TABLES.search(line):
            cost += n * n * _TOML_GROUP_SLICE
        if line.count("[") > 1:
            cost += nesting_depth(line, _TOML_NOT_STRUCTURE, 1) * n * _TOML_NESTED
    if "{" in line:
        cost += _inline_table_cost(line)
    return cost


class CostedTomlDecoder(toml.TomlDecoder):
    """uiri toml's decoder, charging a ``WorkMeter`` before each line is decoded.

    Only ``_get_split_on_quotes`` is overridden: uiri calls it first thing for every key/value
    line (``load_line``) and for every table header (from ``loads``), and it is a leaf, so the
    decoder's recursion (arrays, inline tables) keeps uiri toml's frame count and hits the
    recursion limit where upstream does.
    """

    def __init__(self, meter: WorkMeter) -> None:
        super().__init__(dict)
        self.meter = meter

    def start(self, text: str) -> None:
        """Charge what ``toml.loads`` does before or outside any line decoding: the character
        walk, bare inline-table lines (split before their groups are decoded) and multi-line
        basic strings (unescaped as a whole)."""
        cost = len(text) * _TOML_FIRST_PASS
        if "{" in text:
            cost += sum(_inline_table_cost(m) for m in _INLINE_TABLE_LINE.findall(text))
        if '"""' in text and "\\" in text:
            for string in _MULTILINE_BASIC.findall(text):
                cost += string.count("\\") * len(string) * _TOML_UNESCAPE
        self.meter.charge(cost)

    def _get_split_on_quotes(self, line: str) -> list[str]:
        # From loads only for a table header; from load_line for a key/value line or its key.
        header = sys._getframe(1).f_code.co_name == "loads"
        self.meter.charge(toml_line_cost(line, header=header))
        return super()._get_split_on_quotes(line)
