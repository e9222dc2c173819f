from __future__ import annotations

import pytest

from pytest_structeval.scoring.formats import parse


@pytest.mark.parametrize(
    "code", ["{}", "[]", "0", "false", '""', "null", "not json", '{"a": 1} trailing']
)
def test_json_failures(code):
    assert not parse(code, "json").ok


@pytest.mark.parametrize("code", ['"abc"', "NaN", '{"a": 1, "a": 2}', "[1]"])
def test_json_surprising_passes(code):
    assert parse(code, "json").ok


def test_json_error_has_line_and_column():
    error = parse('{\n  "a": 1,\n  "b" 2\n}', "json").error
    assert error is not None and (error.line, error.column) == (3, 7)


def test_yaml_prose_passes_upstream_but_not_strict():
    result = parse("Sure! a: 1", "yaml")
    assert result.ok and result.value == {"Sure! a": 1}
    assert parse("Here is the YAML you asked for.", "yaml").ok
    assert not parse("Here is the YAML you asked for.", "yaml", mode="strict").ok


@pytest.mark.parametrize("code", ["a: b: c", "a: 1\n---\nb: 2", "", "# only a comment", "a: *x"])
def test_yaml_failures(code):
    assert not parse(code, "yaml").ok


def test_yaml_error_position():
    error = parse("a: 1\nb: c: d\n", "yaml").error
    assert error is not None and error.line == 2


def test_toml_uiri_semantics():
    assert not parse("a = [1, 2.5]", "toml").ok
    assert parse("a = [1, 2.5]", "toml", mode="strict").ok  # tomllib follows TOML 1.0
    assert not parse("", "toml").ok
    error = parse("a = \nb = 1", "toml").error
    assert error is not None and error.line is not None


def test_xml():
    assert parse("<a/>", "xml").value == {"a": None}
    assert not parse("<a>1</a><b/>", "xml").ok
    assert not parse("Here:\n<a/>", "xml").ok
    error = parse("<a>\n<b></a>", "xml").error
    assert error is not None and error.line == 2


def test_csv_always_parses_upstream():
    assert parse("", "csv").ok and parse("", "csv").value["csv_headers"] is None
    assert parse("prose only", "csv").ok
    assert parse("name, age\nx, 1", "csv").value["csv_headers"] == ["name", " age"]
    assert not parse("single", "csv", mode="strict").ok


def test_unknown_format():
    assert not parse("x", "ini").ok
