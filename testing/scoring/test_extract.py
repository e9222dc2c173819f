from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from upstream_oracle import FENCE, FLAGS, TAGS

from pytest_structeval.scoring.extract import extract_code, preprocess


def test_fence_with_prose_around():
    ex = extract_code('Sure!\n```json\n{"a": 1}\n```\nDone.')
    assert ex.code == '{"a": 1}'
    assert {"fence", "prose_before", "prose_after"} <= set(ex.stripped)


def test_unclosed_fence_runs_to_end():
    assert extract_code('```json\n{"a": 1}\n').code == '{"a": 1}'


def test_first_fence_wins_even_with_wrong_language():
    assert extract_code('```yaml\na: 1\n```\n```json\n{"b": 2}\n```').code == "a: 1"


def test_begin_code_tags_and_missing_end_tag():
    assert extract_code('<|BEGIN_CODE|>\n{"a": 1}\n<|END_CODE|>').code == '{"a": 1}'
    ex = extract_code('blah <|begin_code|>{"a": 1}')
    assert ex.code == '{"a": 1}' and "begin_code" in ex.stripped and "prose_before" in ex.stripped


def test_fence_beats_begin_code():
    assert extract_code("<|BEGIN_CODE|>x<|END_CODE|>\n```\ny\n```").code == "y"


def test_code_tag_is_kept_upstream_but_recognised_in_strict():
    assert extract_code("<code>\n{}\n</code>").code == "<code>\n{}\n</code>"
    assert extract_code("<code>\n{}\n</code>", mode="strict").code == "{}"


def test_think_handling():
    assert extract_code('<think>\n\n</think>\n\n{"a": 1}').code == '{"a": 1}'
    assert "think" in extract_code('<think>\n\n</think>\n\n{"a": 1}').stripped
    assert extract_code('<think>\nreasoning\n</think>\n\n{"a": 1}').code.startswith("<think>")


def test_one_line_fence_and_inline_backticks():
    text = '```json {"a": 1} ```'
    assert extract_code(text).code == text
    assert extract_code('Use ```inline``` then\n```json\n{"a": 1}\n```').code == ""


def test_entities_and_unicode_escape():
    assert extract_code("&lt;a&gt;1&lt;/a&gt;").code == "<a>1</a>"
    assert extract_code('{"a": "x\\ny"}').code == '{"a": "x\ny"}'
    assert extract_code("Café").code == "CafÃ©"
    # a bad escape makes the decode raise; upstream keeps the text
    ex = extract_code("bad \\U12 escape")
    assert ex.code == "bad \\U12 escape" and ex.decode_failed


def test_strict_mode_skips_decode():
    assert extract_code('{"a": "x\\ny"}', mode="strict").code == '{"a": "x\\ny"}'


def _reference(text: str) -> str:
    """The upstream regexes, for equivalence on small inputs."""
    text, _, _ = preprocess(text)
    found = re.search(f"{TAGS}|{FENCE}", text, FLAGS)
    code = (
        (found.group(1) if found.group(1) is not None else found.group(2)).strip()
        if found
        else text.strip()
    )
    fence = re.search(FENCE, text, FLAGS)
    if fence:
        code = fence.group(1).strip()
    return code


_pieces = st.lists(
    st.sampled_from(
        [
            *("```", "```json", "\n", "<|BEGIN_CODE|>", "<|END_CODE|>", "a: 1", " ", "x"),
            *("`", "{}", "\t", "<|begin_code|>", "<|End_Code|>"),
        ]
    ),
    max_size=12,
)


@settings(max_examples=400, deadline=None)
@given(_pieces)
def test_extraction_matches_upstream_regexes(pieces):
    text = "".join(pieces)
    assert extract_code(text).code == _reference(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_extraction_never_raises(text):
    ex = extract_code(text)
    assert isinstance(ex.code, str)


def _upstream_raises(text: str) -> bool:
    """Upstream takes ``group(1) or group(2)`` of its first search and strips it: None (an
    empty tag payload, the fence group absent) raises AttributeError."""
    text, _, _ = preprocess(text)
    found = re.search(f"{TAGS}|{FENCE}", text, FLAGS)
    return found is not None and (found.group(1) or found.group(2)) is None


@settings(max_examples=600, deadline=None)
@given(_pieces)
def test_extraction_fails_exactly_where_upstream_raises(pieces):
    text = "".join(pieces)
    assert (extract_code(text).failed is not None) is _upstream_raises(text)
    assert extract_code(text, mode="strict").failed is None  # strict mode is ours: no crash


def test_empty_begin_code_payload_is_a_failed_extraction():
    for text in ("<|BEGIN_CODE|><|END_CODE|>", "<|BEGIN_CODE|>\n", "x <|BEGIN_CODE|>  \n\n"):
        assert extract_code(text).failed is not None, repr(text)
    for text in ("<|BEGIN_CODE|> x<|END_CODE|>", "```\n```<|BEGIN_CODE|><|END_CODE|>"):
        assert extract_code(text).failed is None, repr(text)


@settings(max_examples=300, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(["`", "\\", "u", "n", "0", "\n", "é", "x", "<", ">", "{", " "])
    )
)
def test_the_document_is_the_code_without_the_unicode_escape_step(generation):
    for mode in ("upstream", "strict"):
        assert (
            extract_code(generation, mode=mode).document
            == extract_code(generation, mode=mode, unescape=False).code
        )
