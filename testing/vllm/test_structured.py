"""--structured-outputs: JSON answers are constrained to JSON, CSV answers to CSV rows, even
from a random model.

A random model under a grammar rarely finishes a document (greedy, the tiny model writes one
number without end), so the engine test cannot wait for complete answers: an answer cut at
max_tokens must be the start of a valid document, one that stopped must be a whole one."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import regex  # transformers' dependency; the stdlib re has no partial matching

from pytest_structeval.backends.request import CSV_REGEX
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings
from pytest_structeval.tasks import Task


class _Invalid(Exception):
    pass


class _End(Exception):
    """The text ended where a valid document could still go on."""


_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
_NUMBER_START = re.compile(r"-|-?(0|[1-9]\d*)(\.\d*)?([eE][+-]?\d*)?")
_ESCAPES = set('"\\/bfnrtu')
_HEX = set("0123456789abcdefABCDEF")


def _space(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    if i == len(text):
        raise _End
    return i


def _string(text: str, i: int) -> int:
    if text[i] != '"':
        raise _Invalid(i)
    i += 1
    while True:
        if i == len(text):
            raise _End
        char = text[i]
        if char == '"':
            return i + 1
        if char < " ":
            raise _Invalid(i)
        if char == "\\":
            escape = text[i + 1 : i + 2]
            if escape and escape not in _ESCAPES:
                raise _Invalid(i)
            digits = text[i + 2 : i + 6] if escape == "u" else ""
            if not set(digits) <= _HEX:
                raise _Invalid(i)
            i += 2 + len(digits)
            if i > len(text) or (escape == "u" and len(digits) < 4):
                raise _End
            continue
        i += 1


def _value(text: str, i: int) -> int:
    i = _space(text, i)
    char = text[i]
    if char in "{[":
        close = "}" if char == "{" else "]"
        i = _space(text, i + 1)
        if text[i] == close:
            return i + 1
        while True:
            if char == "{":
                i = _space(text, _string(text, i))
                if text[i] != ":":
                    raise _Invalid(i)
                i += 1
            i = _space(text, _value(text, i))
            if text[i] == close:
                return i + 1
            if text[i] != ",":
                raise _Invalid(i)
            i = _space(text, i + 1)
    if char == '"':
        return _string(text, i)
    for literal in ("true", "false", "null"):
        if text.startswith(literal, i):
            return i + len(literal)
        if literal.startswith(text[i:]):
            raise _End
    if _NUMBER_START.fullmatch(text, i):
        raise _End  # the text ends in a number, which more digits could go on
    if number := _NUMBER.match(text, i):
        return number.end()
    raise _Invalid(i)


def json_object_prefix(text: str) -> bool:
    """Whether ``text`` is the start of a JSON object (or a whole one): what vLLM's
    ``json_object`` constraint lets through when output stops at max_tokens."""
    if not text.startswith("{"):
        return False
    try:
        end = _value(text, 0)
    except _End:
        return True
    except _Invalid:
        return False
    return not text[end:].strip()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a":[1,{"b":null}],"c":"x"}', True),
        ('{"{":220322032203', True),
        ('{"a":tr', True),
        ('{"a":1.', True),
        ('{"a":"\\u00', True),
        ('{"a":[1,', True),
        ("{", True),
        ("\n\n\n", False),
        ('{"a" 1', False),
        ('{"a":1}}', False),
        ("{'a':1}", False),
        ('{"a":01', False),
        ('["a"]', False),
    ],
)
def test_json_object_prefix(text: str, expected: bool) -> None:
    assert json_object_prefix(text) is expected


def test_constrained_formats_stay_in_their_grammar(
    tiny_model: Path, fast_engine: dict, tasks: list[Task]
) -> None:
    config = Settings.of(
        model=str(tiny_model), max_tokens=48, vllm_args=fast_engine, structured_outputs=True
    )
    backend = VllmBackend(config.engine, config.sampling, progress=False)
    try:
        results = backend.generate(tasks)
    finally:
        backend.close()
    meta = backend.meta()
    assert meta["engine_args"]["structured_outputs_config"] == {
        "backend": "xgrammar",
        "disable_any_whitespace": True,
    }
    assert meta["structured_outputs"]["JSON"] == {"json_object": True}
    assert meta["structured_outputs"]["CSV"] == {"regex": CSV_REGEX}
    checked = {"JSON": 0, "CSV": 0}
    for task in tasks:
        result = results[task.task_id]
        assert result.finish_reason in ("stop", "length"), task.task_id
        stopped = result.finish_reason == "stop"
        if task.output_type == "JSON":
            if stopped:
                assert isinstance(json.loads(result.text), dict), result.text
            assert json_object_prefix(result.text), result.text
        elif task.output_type == "CSV":
            match = regex.fullmatch(CSV_REGEX, result.text, partial=not stopped)
            assert match is not None, result.text
        else:
            continue
        checked[task.output_type] += 1
    assert checked == {
        "JSON": sum(t.output_type == "JSON" for t in tasks),
        "CSV": sum(t.output_type == "CSV" for t in tasks),
    }
    assert checked["JSON"] >= 1 and checked["CSV"] >= 1
