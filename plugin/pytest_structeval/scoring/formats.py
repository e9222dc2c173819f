"""Parsers for the five StructEval-T formats (scoring-spec §2), hardened against hostile text.

Mode ``upstream`` reproduces the grader: ``json``, PyYAML safe loading, uiri ``toml``,
``xmltodict`` and ``csv``; render is 1 when the parse raises nothing and the result is truthy.
Mode ``strict`` follows competitor tooling (spec §7 item 8): YAML must be a mapping or a list,
TOML goes through ``tomllib``, CSV needs at least two columns.

No parser here reads a file, opens a socket or runs code: YAML uses the safe loader, XML
refuses entity declarations (xmltodict's default) and expat never fetches a DTD. Size and
nesting are checked before parsing, because the C parsers recurse on the C stack and a
100k-deep document would crash the process rather than raise.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from typing import Literal
from xml.parsers import expat

import toml
import tomllib
import xmltodict
import yaml

Mode = Literal["upstream", "strict"]

# A 4096-token generation is at most a few tens of kB (the longest in ../shared/data is 50 kB);
# anything much larger is hostile. The limits keep the worst case of each parser well inside the
# 1 s per-generation budget on one core (score_task parses twice: upstream and strict view).
MAX_CODE_CHARS = 200_000
# Pure-Python PyYAML (what upstream runs) hits the recursion limit near 300 levels, json and
# toml near 1000; legitimate answers stay far below. The C parsers must never see deeper input.
MAX_NESTING = 200
# PyYAML costs up to ~2.3 us per character and parse on flow or block collections (libyaml
# scanner, Python constructor), and score_task parses twice; 80 kB measured 0.4 s alone but
# 1.1 s of CPU with the other core busy, so 40 kB keeps a 2x margin on a loaded machine. The
# longest real YAML answer in ../shared/data is 14 kB; 4096 tokens are ~16 kB.
MAX_YAML_CHARS = 40_000
# uiri toml is pure Python and the slowest per byte (~10 us per character on arrays of inline
# tables, ~8 us per character for both parses in score_task); 40 kB keeps the worst case near
# 0.3 s and still covers any 4096-token answer (the longest real TOML answer is 13 kB).
MAX_TOML_CHARS = 40_000

try:  # libyaml is ~10x faster; its SafeLoader semantics match the pure-Python one.
    _YamlLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - pyyaml built without libyaml
    _YamlLoader = yaml.SafeLoader


MESSAGE_SHOWN = 160


@dataclass(frozen=True)
class SyntaxErrorInfo:
    """Why a parse failed; line and column are 1-based, None when the parser gave none."""

    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else ""
        if self.line is not None and self.column is not None:
            where += f", column {self.column}"
        # Some parsers put the whole parsed document in the message (uiri toml does).
        message = (
            self.message
            if len(self.message) <= MESSAGE_SHOWN
            else self.message[:MESSAGE_SHOWN] + "…"
        )
        return f"{message} ({where})" if where else message


@dataclass(frozen=True)
class ParseResult:
    """``ok`` is upstream's render score; ``value`` is what key paths are walked over."""

    ok: bool
    value: object = None
    error: SyntaxErrorInfo | None = None


def _fail(message: str, line: int | None = None, column: int | None = None) -> ParseResult:
    return ParseResult(False, None, SyntaxErrorInfo(message, line, column))


_BRACKETS = {ord(c): None for c in "[]{}"}


def nesting_depth(text: str, limit: int = MAX_NESTING) -> int:
    """Upper bound of bracket nesting, cheap enough for megabytes; stops counting past limit.

    Brackets inside strings are counted too, which only over-estimates; block-style YAML and
    XML depth is bounded separately (indentation, element stack).
    """
    if len(text) - len(text.translate(_BRACKETS)) <= limit:
        return 0  # fewer brackets than the limit cannot nest deeper than it
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    return deepest
        elif char in "]}" and depth:
            depth -= 1
    return deepest


def _truthy(value: object) -> bool:
    try:
        return bool(value)
    except Exception:  # a parsed value has no custom __bool__, but be safe
        return False


def _guard(code: str, fmt: str) -> ParseResult | None:
    if len(code) > MAX_CODE_CHARS:
        return _fail(f"output too large to parse ({len(code)} characters, limit {MAX_CODE_CHARS})")
    if fmt == "toml" and len(code) > MAX_TOML_CHARS:
        return _fail(f"TOML too large to parse ({len(code)} characters, limit {MAX_TOML_CHARS})")
    if fmt == "yaml" and len(code) > MAX_YAML_CHARS:
        return _fail(f"YAML too large to parse ({len(code)} characters, limit {MAX_YAML_CHARS})")
    if fmt in ("json", "yaml", "toml") and nesting_depth(code) > MAX_NESTING:
        return _fail(f"nesting deeper than {MAX_NESTING} levels")
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Upstream writes the code to a UTF-8 file first; a lone surrogate makes that fail.
        return _fail(f"cannot be written as UTF-8 ({exc.reason} at character {exc.start})")
    return None


def parse_json(code: str, mode: Mode = "upstream") -> ParseResult:
    try:
        value = json.loads(code)
    except json.JSONDecodeError as exc:
        return _fail(exc.msg, exc.lineno, exc.colno)
    except RecursionError:
        return _fail("nesting too deep for the JSON parser")
    except (ValueError, MemoryError) as exc:
        return _fail(f"JSON error: {exc}")
    if not _truthy(value):
        return _fail(f"parsed to an empty value ({json.dumps(value)})")
    return ParseResult(True, value)


# Block nesting in YAML shows as indentation; PyYAML's pure-Python composer (upstream) recurses
# twice per level, so real documents never get near this.
_DEEP_INDENT = re.compile(r"^[ \t-]{400,}", re.MULTILINE)


def parse_yaml(code: str, mode: Mode = "upstream") -> ParseResult:
    if _DEEP_INDENT.search(code):
        return _fail("nesting deeper than the YAML parser allows (indentation over 400)")
    try:
        # A multi-document stream raises ComposerError, as yaml.safe_load does upstream.
        value = yaml.load(code, Loader=_YamlLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "YAML error"
        if mark is None:
            return _fail(message)
        return _fail(message, mark.line + 1, mark.column + 1)
    except yaml.YAMLError as exc:  # ReaderError (control characters) and friends
        return _fail(f"YAML error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    except (RecursionError, MemoryError) as exc:
        return _fail(f"YAML too deep or too large ({type(exc).__name__})")
    except (ValueError, TypeError, OverflowError) as exc:
        # Constructors raise these on e.g. an out-of-range timestamp like 2024-13-45.
        return _fail(f"YAML value error: {exc}")
    if not _truthy(value):
        return _fail(
            "parsed to an empty document"
            if value is None
            else f"parsed to an empty value ({value!r})"
        )
    if mode == "strict" and not isinstance(value, (dict, list)):
        return _fail(f"parsed to a {type(value).__name__}, not a mapping or a list (strict mode)")
    return ParseResult(True, value)


_TOMLLIB_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_toml(code: str, mode: Mode = "upstream") -> ParseResult:
    try:
        value = tomllib.loads(code) if mode == "strict" else toml.loads(code)
    except toml.TomlDecodeError as exc:
        return _fail(exc.msg, exc.lineno, exc.colno)
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        found = _TOMLLIB_POS.search(text)
        message = _TOMLLIB_POS.sub("", text).strip()
        if found:
            return _fail(message, int(found.group(1)), int(found.group(2)))
        return _fail(message)
    except (RecursionError, MemoryError) as exc:
        return _fail(f"TOML too deep or too large ({type(exc).__name__})")
    except Exception as exc:  # uiri toml leaks IndexError/ValueError on some malformed input
        return _fail(f"TOML error: {type(exc).__name__}: {exc}")
    if not _truthy(value):
        return _fail("parsed to an empty table")
    return ParseResult(True, value)


def parse_xml(code: str, mode: Mode = "upstream") -> ParseResult:
    try:
        # disable_entities (xmltodict's default, made explicit) rejects every <!ENTITY>, so
        # entity bombs and external entities fail instead of expanding or fetching.
        value = xmltodict.parse(code, disable_entities=True)
    except expat.ExpatError as exc:
        message = expat.ErrorString(exc.code) if exc.code else str(exc)
        return _fail(message, exc.lineno, exc.offset + 1)
    except ValueError as exc:
        return _fail(f"XML rejected: {exc}")
    except (RecursionError, MemoryError) as exc:
        return _fail(f"XML too deep or too large ({type(exc).__name__})")
    if not _truthy(value):
        return _fail("parsed to an empty document")
    return ParseResult(True, value)


def csv_table(code: str) -> dict[str, object]:
    """Upstream's key-validation view of a CSV: header row plus one dict per data row.

    An empty file has ``csv_headers = None`` (upstream then crashes on ``csv::`` paths; the
    path walker treats it as not found). A read error keeps whatever was read before it.
    """
    reader = csv.DictReader(io.StringIO(code, newline=""))
    headers: list[str] | None = None
    rows: list[dict[str | None, object]] = []
    try:
        headers = reader.fieldnames  # type: ignore[assignment]
        for row in reader:
            rows.append(row)
    except csv.Error:
        pass
    return {"csv_headers": list(headers) if headers is not None else None, "csv_rows": rows}


def parse_csv(code: str, mode: Mode = "upstream") -> ParseResult:
    # Upstream builds a DictReader without iterating it, which is always truthy: a CSV
    # "parses" whatever it holds, prose and empty text included.
    table = csv_table(code)
    if mode == "strict":
        headers = table["csv_headers"]
        if not headers or len(headers) < 2:  # type: ignore[arg-type]
            return _fail("CSV needs a header row with at least 2 columns (strict mode)", 1, 1)
    return ParseResult(True, table)


_PARSERS = {
    "json": parse_json,
    "yaml": parse_yaml,
    "toml": parse_toml,
    "xml": parse_xml,
    "csv": parse_csv,
}


def parse(code: str, fmt: str, *, mode: Mode = "upstream") -> ParseResult:
    """Parse ``code`` as ``fmt`` (lower case); never raises for any input text."""
    fmt = fmt.lower()
    parser = _PARSERS.get(fmt)
    if parser is None:
        return _fail(f"unsupported format {fmt!r}")
    guarded = _guard(code, fmt)
    if guarded is not None:
        return guarded
    try:
        return parser(code, mode)
    except (RecursionError, MemoryError) as exc:
        return _fail(f"{fmt.upper()} too deep or too large ({type(exc).__name__})")
    except Exception as exc:  # last resort: a scorer must never crash on a generation
        return _fail(f"{fmt.upper()} parser failed: {type(exc).__name__}: {exc}")
