"""The guards that replaced the length limits (issue 10): nesting outside strings, work budgets.

They never refuse what upstream would score up to what a 32k-token generation can hold, and
they leave upstream's parsers as they are (same values, same recursion depth).
"""

from __future__ import annotations

import json
import math
import random
import re

import pytest
import toml
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support import OPEN150_ANSWERS

from pytest_structeval.scoring.cost import (
    _JSON_STRING,
    _TOML_NOT_STRUCTURE,
    JSON_MAX_DEPTH,
    TOML_MAX_DEPTH,
    CostedTomlDecoder,
    WorkMeter,
    nesting_depth,
)
from pytest_structeval.scoring.formats import parse
from pytest_structeval.scoring.yaml_upstream import UpstreamLoader
from pytest_structeval.tasks import BUNDLED_TASKS, TaskSet, load_generations

TASKS = TaskSet.load(BUNDLED_TASKS)
ANSWERS = load_generations(OPEN150_ANSWERS, TASKS)


def _naive_depth(text: str, strings: re.Pattern[str]) -> int:
    depth = deepest = 0
    for char in strings.sub("", text):
        depth += (char in "[{") - (char in "]}")
        deepest = max(deepest, depth)
    return deepest


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="[]{}\"\\ax#\n'", max_size=60))
def test_nesting_is_counted_outside_strings(text):
    assert nesting_depth(text, _JSON_STRING, 0) == _naive_depth(text, _JSON_STRING)
    assert nesting_depth(text, _TOML_NOT_STRUCTURE, 0) == _naive_depth(text, _TOML_NOT_STRUCTURE)


def test_json_nesting_guard_only_refuses_what_json_cannot_parse_either():
    deep = "[" * (JSON_MAX_DEPTH + 1) + "]" * (JSON_MAX_DEPTH + 1)
    assert "nesting deeper than" in parse(deep, "json").error.message
    with pytest.raises(RecursionError):
        json.loads(deep)
    in_a_string = json.dumps({"a": "[" * 50_000, "b": "{" * 50_000})
    assert parse(in_a_string, "json").ok


def test_toml_nesting_guard_only_refuses_what_uiri_toml_cannot_parse_either():
    deep = "a = " + "[" * (TOML_MAX_DEPTH + 1) + "1" + "]" * (TOML_MAX_DEPTH + 1)
    assert "nesting deeper than" in parse(deep, "toml").error.message
    with pytest.raises(RecursionError):
        toml.loads(deep)
    brackets = "[" * 2000
    for text in (
        f'a = "{brackets}"',
        f"a = '{brackets}'",
        f'a = """\n{brackets}\n"""',
        f"# {brackets}\na = 1",
    ):
        assert parse(text, "toml").ok, text[:20]


def _costed_toml(text: str) -> object:
    """``toml.loads`` through the costed decoder, unbudgeted."""
    decoder = CostedTomlDecoder(WorkMeter("test", math.inf))
    decoder.start(text)
    return toml.loads(text, decoder=decoder)


def _threshold(load, make) -> int:
    """The deepest nesting ``load`` accepts before RecursionError (binary search)."""
    low, high = 1, 2000
    while low < high:
        middle = (low + high + 1) // 2
        try:
            load(make(middle))
            low = middle
        except RecursionError:
            high = middle - 1
    return low


def test_the_meters_leave_the_recursion_limit_where_upstream_has_it():
    # Metering adds no frame to the parsers' recursion, so deep documents fail (or parse) at
    # the same depth as with the stock parsers called from the same place.
    def stock_toml(text: str) -> object:
        decoder = toml.TomlDecoder(dict)
        return toml.loads(text, decoder=decoder)

    arrays = lambda n: "a = " + "[" * n + "1" + "]" * n  # noqa: E731
    tables = lambda n: "a = " + "{b = " * n + "1" + "}" * n  # noqa: E731
    for make in (arrays, tables):
        assert _threshold(_costed_toml, make) == _threshold(stock_toml, make)

    def metered_yaml(text: str) -> object:
        return UpstreamLoader(text, math.inf).load()

    def stock_yaml(text: str) -> object:
        return yaml.SafeLoader(text).get_single_data()  # what UpstreamLoader.load stands for

    flow = lambda n: "[" * n + "]" * n  # noqa: E731
    block = lambda n: "".join(" " * i + "k:\n" for i in range(n))  # noqa: E731
    for make in (flow, block):
        assert _threshold(metered_yaml, make) == _threshold(stock_yaml, make)


def _toml_outcome(load, text: str) -> tuple:
    try:
        return ("value", repr(load(text)))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc)[:200])


def test_the_costed_toml_decoder_decodes_as_uiri_toml():
    rng = random.Random(10)
    texts = [ANSWERS[t.task_id] for t in TASKS if t.output_type == "TOML"]
    texts += ['["a.b"]\nx = 1', "a=x=1", 'a = {b = "x,y", c = [1, 2]}', "a = [[1], [2, 3]]"]
    for text in list(texts):
        lines = text.split("\n")
        for _ in range(20):
            i = rng.randrange(len(lines))
            lines[i] = rng.choice([lines[i][:-1], lines[i] + ",", "  " + lines[i], "[x]"])
            texts.append("\n".join(lines))
    for text in texts:
        assert _toml_outcome(_costed_toml, text) == _toml_outcome(toml.loads, text), text[:200]


# What a 32k-token generation can hold, at its densest: none of it may be refused.
ENVELOPE = [
    ("yaml", "[" + "1," * 32_768 + "1]"),  # two YAML tokens per generated token
    ("yaml", "".join(f"key_{i}: value number {i}\n" for i in range(8_000))),
    ("yaml", "".join(f"- name: item {i}\n  tags: [a, b]\n" for i in range(3_000))),
    ("toml", "".join(f'[section_{i}]\nname = "entry {i}"\nvalue = {i}\n' for i in range(4_000))),
    ("toml", "tags = [" + '"red, green", ' * 6_000 + '"blue"]'),  # uiri's quadratic merges
    ("toml", "points = [" + "{x = 1, y = 2}, " * 4_000 + "{x = 0, y = 0}]"),
    ("json", json.dumps([{"id": i, "name": f"item {i}"} for i in range(20_000)])),
    ("xml", "<r>" + "".join(f"<item id='{i}'><name>n{i}</name></item>" for i in range(10_000)) + "</r>"),
    ("csv", "a,b,c\n" + "".join(f"{i},x{i},y\n" for i in range(30_000))),
]  # fmt: skip


@pytest.mark.parametrize(("fmt", "text"), ENVELOPE, ids=[f"{f}-{len(t)}" for f, t in ENVELOPE])
def test_documents_a_long_generation_can_hold_are_not_refused(fmt, text):
    result = parse(text, fmt)
    assert result.ok and result.key_view_error is None, result.error or result.key_view_error
    assert parse(text, fmt, mode="strict").error is None or fmt == "toml"


@pytest.mark.parametrize(
    ("fmt", "text"),
    [
        ("yaml", "[" + "[]," * 100_000 + "[]]"),
        ("toml", '["' + "a." * 50_000 + 'a"]\nx = 1'),
        ("xml", "<r>" + "<a/>" * 1_000_000 + "</r>"),
    ],
    ids=["yaml", "toml", "xml"],
)
def test_a_parse_past_its_budget_is_refused_with_that_reason(fmt, text):
    result = parse(text, fmt)
    assert not result.ok and "budget" in result.error.message


def test_reading_csv_rows_past_the_budget_leaves_the_syntax_score():
    result = parse("a,b\n" + "1,2\n" * 1_000_000, "csv")
    assert result.ok and "budget" in result.key_view_error
