"""Parsers for the five StructEval-T formats (scoring-spec §2), as upstream runs them.

Mode ``upstream`` reproduces the grader: ``json``, PyYAML's pure-Python ``yaml.safe_load``
(``yaml_upstream``), uiri ``toml``, ``xmltodict`` and ``csv``; render is 1 when the parse
raises nothing and the result is truthy. Mode ``strict`` follows competitor tooling (spec §7
item 8): YAML must be a mapping or a list, TOML goes through ``tomllib``, CSV needs at least two
columns.

No parser here reads a file, opens a socket or runs code: YAML uses the safe loader, XML
refuses entity declarations (xmltodict's default) and expat never fetches a DTD. Nothing is
refused for its length; a parse is refused when its work passes a budget, and nesting only
where upstream's own parser cannot go either (``cost.py``; the deviations this leaves are in
docs/scoring.md).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from xml.parsers import expat

import toml
import tomllib
import xmltodict
import yaml

from .cost import (
    JSON_MAX_DEPTH,
    TOML_MAX_DEPTH,
    WORK_BUDGET,
    CostedTomlDecoder,
    TooCostly,
    WorkMeter,
    csv_cost,
    json_depth,
    toml_depth,
    tomllib_cost,
    xml_cost,
)
from .extract import ScoringMode
from .yaml_upstream import safe_load

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
    """``ok`` is upstream's render score; ``value`` is what key paths are walked over.

    ``key_view_error`` says why a document that passes the syntax check has no value to walk
    (CSV only: upstream checks the syntax without reading the rows, then reads them all for the
    keys, and a read error there makes its key score 0).
    """

    ok: bool
    value: object = None
    error: SyntaxErrorInfo | None = None
    key_view_error: str | None = None


def _fail(message: str, line: int | None = None, column: int | None = None) -> ParseResult:
    return ParseResult(False, None, SyntaxErrorInfo(message, line, column))


def _truthy(value: object) -> bool:
    try:
        return bool(value)
    except Exception:  # a parsed value has no custom __bool__, but be safe
        return False


def _writable(code: str) -> ParseResult | None:
    try:
        code.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Upstream writes the code to a UTF-8 file first; a lone surrogate makes that fail.
        return _fail(f"cannot be written as UTF-8 ({exc.reason} at character {exc.start})")
    return None


def parse_json(
    code: str, mode: ScoringMode = "upstream", budget: float = WORK_BUDGET
) -> ParseResult:
    if json_depth(code) > JSON_MAX_DEPTH:
        return _fail(
            f"nesting deeper than {JSON_MAX_DEPTH} levels (upstream's json raises RecursionError "
            "long before; with a raised recursion limit it would overflow the C stack)"
        )
    try:
        value = json.loads(code)
    except json.JSONDecodeError as exc:
        return _fail(exc.msg, exc.lineno, exc.colno)
    except RecursionError:
        return _fail("nesting too deep for the JSON parser (RecursionError, as upstream)")
    except (ValueError, MemoryError) as exc:
        return _fail(f"JSON error: {exc}")
    if not _truthy(value):
        return _fail(f"parsed to an empty value ({json.dumps(value)})")
    return ParseResult(True, value)


def parse_yaml(
    code: str, mode: ScoringMode = "upstream", budget: float = WORK_BUDGET
) -> ParseResult:
    try:
        # A multi-document stream raises ComposerError, as yaml.safe_load does upstream.
        value = safe_load(code, budget)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = " ".join(p for p in (exc.context, exc.problem) if p) or "YAML error"
        if mark is None:
            return _fail(message)
        return _fail(message, mark.line + 1, mark.column + 1)
    except yaml.YAMLError as exc:  # ReaderError (control characters) and friends
        return _fail(f"YAML error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    except RecursionError:
        return _fail("nesting too deep for PyYAML's composer (RecursionError, as upstream)")
    except (ValueError, TypeError, OverflowError) as exc:
        # Constructors raise these on e.g. an out-of-range timestamp like 2024-13-45.
        return _fail(f"YAML value error: {exc}")
    if not _truthy(value):
        return _fail(
            "parsed to an empty document"
            if value is None
            else f"parsed to an empty value ({value!r})"
        )
    result = ParseResult(True, value)
    return _strict_yaml(result) if mode == "strict" else result


def _strict_yaml(result: ParseResult) -> ParseResult:
    if result.ok and not isinstance(result.value, (dict, list)):
        name = type(result.value).__name__
        return _fail(f"parsed to a {name}, not a mapping or a list (strict mode)")
    return result


_TOMLLIB_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def parse_toml(
    code: str, mode: ScoringMode = "upstream", budget: float = WORK_BUDGET
) -> ParseResult:
    try:
        if mode == "strict":
            if tomllib_cost(code) > budget:
                raise TooCostly("the TOML parse", budget)
            value = tomllib.loads(code)
        else:
            decoder = CostedTomlDecoder(WorkMeter("the TOML parse", budget))
            decoder.start(code)
            if toml_depth(code) > TOML_MAX_DEPTH:
                return _fail(
                    f"nesting deeper than {TOML_MAX_DEPTH} levels (upstream's toml raises "
                    "RecursionError before it)"
                )
            value = toml.loads(code, decoder=decoder)
    except toml.TomlDecodeError as exc:
        return _fail(exc.msg, exc.lineno, exc.colno)
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        found = _TOMLLIB_POS.search(text)
        message = _TOMLLIB_POS.sub("", text).strip()
        if found:
            return _fail(message, int(found.group(1)), int(found.group(2)))
        return _fail(message)
    except TooCostly:
        raise
    except RecursionError:
        return _fail("nesting too deep for the TOML parser (RecursionError, as upstream)")
    except Exception as exc:  # uiri toml leaks IndexError/ValueError on some malformed input
        return _fail(f"TOML error: {type(exc).__name__}: {exc}")
    if not _truthy(value):
        return _fail("parsed to an empty table")
    return ParseResult(True, value)


def parse_xml(
    code: str, mode: ScoringMode = "upstream", budget: float = WORK_BUDGET
) -> ParseResult:
    if xml_cost(code) > budget:
        raise TooCostly("the XML parse", budget)
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
    path walker treats them as not found). Raises ``csv.Error`` where reading does, e.g. on a
    field over ``csv.field_size_limit()`` (131072 characters by default).
    """
    reader = csv.DictReader(io.StringIO(code, newline=""))
    headers = reader.fieldnames
    rows = list(reader)
    return {"csv_headers": list(headers) if headers is not None else None, "csv_rows": rows}


def parse_csv(
    code: str, mode: ScoringMode = "upstream", budget: float = WORK_BUDGET
) -> ParseResult:
    # Upstream builds a DictReader without iterating it, which is always truthy: a CSV
    # "parses" whatever it holds, prose and empty text included. Its key check then reads
    # every row, and any error there gives keys 0 (the syntax score stays 1).
    if csv_cost(code) > budget:
        result = ParseResult(True, key_view_error=str(TooCostly("reading the CSV rows", budget)))
    else:
        try:
            result = ParseResult(True, csv_table(code))
        except csv.Error as exc:
            result = ParseResult(
                True, key_view_error=f"reading the CSV rows failed, as upstream's does: {exc}"
            )
    return _strict_csv(result) if mode == "strict" else result


def _strict_csv(result: ParseResult) -> ParseResult:
    headers = result.value["csv_headers"] if isinstance(result.value, dict) else None
    if not headers or len(headers) < 2:
        return _fail("CSV needs a header row with at least 2 columns (strict mode)", 1, 1)
    return result


_PARSERS = {
    "json": parse_json,
    "yaml": parse_yaml,
    "toml": parse_toml,
    "xml": parse_xml,
    "csv": parse_csv,
}


def parse(
    code: str, fmt: str, *, mode: ScoringMode = "upstream", budget: float = WORK_BUDGET
) -> ParseResult:
    """Parse ``code`` as ``fmt`` (lower case); never raises for any input text.

    ``budget`` is the work the parse may do (``cost.py``); past it the parse fails.
    """
    fmt = fmt.lower()
    parser = _PARSERS.get(fmt)
    if parser is None:
        return _fail(f"unsupported format {fmt!r}")
    unwritable = _writable(code)
    if unwritable is not None:
        return unwritable
    try:
        return parser(code, mode, budget)
    except TooCostly as exc:
        return _fail(str(exc))
    except (RecursionError, MemoryError) as exc:
        return _fail(f"{fmt.upper()} too deep or too large ({type(exc).__name__})")
    except Exception as exc:  # last resort: a scorer must never crash on a generation
        return _fail(f"{fmt.upper()} parser failed: {type(exc).__name__}: {exc}")


def strict_verdict(upstream: ParseResult, fmt: str) -> ParseResult | None:
    """The strict-mode result for the text ``upstream`` was parsed from, where both modes use
    the same parser (all formats but TOML), so that the text is not parsed twice."""
    fmt = fmt.lower()
    if fmt == "yaml":
        return _strict_yaml(upstream)
    if fmt == "csv":
        return _strict_csv(upstream)
    if fmt in ("json", "xml"):
        return upstream
    return None
