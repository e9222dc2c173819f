"""YAML is parsed exactly as upstream's ``yaml.safe_load`` (PyYAML's pure-Python SafeLoader).

``yaml_upstream.safe_load`` takes a fast path for plain block documents; these tests hold it
to PyYAML's stock loader on real answers, on perturbed bundled answers and on generated text:
same value (types included), or the same error with the same marks, and the same work
charged on both paths.
"""

from __future__ import annotations

import json
import math
import random

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from support import OPEN150_ANSWERS

from pytest_structeval.scoring.cost import WORK_BUDGET, TooCostly
from pytest_structeval.scoring.extract import as_returned, extract_code, normalise_newlines
from pytest_structeval.scoring.formats import parse
from pytest_structeval.scoring.yaml_upstream import (
    NOT_BLOCK,
    UpstreamLoader,
    _block_document,
    safe_load,
)

ANSWERS = [item["generation"] for item in json.loads(OPEN150_ANSWERS.read_text(encoding="utf-8"))]


def outcome(load, text: str) -> tuple:
    """What a load gives: the value's repr (types and key order show), or the error."""
    try:
        return ("value", repr(load(text)))
    except yaml.MarkedYAMLError as exc:
        marks = tuple(
            None if m is None else (m.index, m.line, m.column)
            for m in (exc.context_mark, exc.problem_mark)
        )
        return ("yaml error", type(exc).__name__, exc.context, exc.problem, marks)
    except RecursionError:
        return ("recursion",)
    except Exception as exc:  # constructor ValueErrors and friends
        return ("error", type(exc).__name__, str(exc))


def stock(text: str) -> object:
    return yaml.load(text, Loader=yaml.SafeLoader)


def ours(text: str) -> object:
    return safe_load(text, budget=math.inf)


def fast_path(text: str) -> tuple[int, object] | None:
    """(tokens, root) when the fast path decides ``text`` (None if it falls back); a proven
    rejection re-raises."""
    block = _block_document(UpstreamLoader(text, math.inf), text)
    return None if block is NOT_BLOCK else block  # type: ignore[return-value]


def assert_same(text: str) -> None:
    assert outcome(ours, text) == outcome(stock, text), text[:300]
    try:
        block = fast_path(text)
    except yaml.YAMLError:
        return
    if block is not None:
        # The fast path counts the tokens the scanner produces (the work it charges).
        assert block[0] == len(list(yaml.scan(text, Loader=yaml.SafeLoader))), text[:300]


def real_texts(shared_data) -> tuple[list[str], list[str]]:
    """Every real generation's extracted code (all formats: JSON and TOML are YAML-ish text
    too), and the YAML answers' extracted code alone."""
    records = json.loads((shared_data / "public_150.json").read_text(encoding="utf-8"))
    formats = {r["task_id"]: r["output_type"] for r in records}
    texts, yaml_codes = [], []
    for path in sorted((shared_data / "inference").glob("*.json")):
        for item in json.loads(path.read_text(encoding="utf-8")):
            code = normalise_newlines(extract_code(item["generation"]).code)
            texts.append(code)
            if formats[item["task_id"]] == "YAML":
                yaml_codes.append(code)
                texts.append(normalise_newlines(as_returned(item["generation"])))
    return texts, yaml_codes


def _decided_fast(text: str) -> bool:
    try:
        return fast_path(text) is not None
    except yaml.YAMLError:
        return True


def test_real_answers_of_every_format_load_as_upstream(shared_data):
    texts, yaml_codes = real_texts(shared_data)
    for text in texts:
        assert_same(text)
    # Most real YAML answers never reach the slow loader (what makes it affordable).
    assert sum(map(_decided_fast, yaml_codes)) > 0.8 * len(yaml_codes)


def _perturb(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    line = lines[i]
    edits = [
        lambda: lines.pop(i),
        lambda: lines.__setitem__(i, " " + line),
        lambda: lines.__setitem__(i, line[1:]),
        lambda: lines.__setitem__(i, line + "\t"),
        lambda: lines.__setitem__(i, line.replace(": ", ":\t", 1)),
        lambda: lines.__setitem__(i, line + ":"),
        lambda: lines.__setitem__(i, line + " # note"),
        lambda: lines.__setitem__(i, line + "# note"),
        lambda: lines.__setitem__(i, line.rstrip(":")),
        lambda: lines.__setitem__(i, line.replace(": ", ": x: ", 1)),
        lambda: lines.__setitem__(i, "- " + line),
        lambda: lines.__setitem__(i, line.replace("- ", "-", 1)),
        lambda: lines.__setitem__(i, line[: rng.randrange(len(line) + 1)]),
        lambda: lines.insert(i, line),
        lambda: lines.insert(i, "# comment"),
        lambda: lines.insert(i, ""),
        lambda: lines.insert(i, "---"),
        lambda: lines.__setitem__(i, line.replace('"', "'")),
        lambda: lines.__setitem__(i, line.replace(": ", ': "', 1)),
        lambda: lines.__setitem__(i, line.replace(": ", ": &a ", 1)),
        lambda: lines.__setitem__(i, line.replace(": ", ": [", 1)),
        lambda: lines.__setitem__(i, line + " " * 3),
    ]
    rng.choice(edits)()
    return "\n".join(lines)


def test_perturbed_bundled_answers_load_as_upstream():
    rng = random.Random(20260110)
    for answer in ANSWERS:
        assert_same(answer)
        text = answer
        for _ in range(12):
            text = _perturb(text, rng)
            assert_same(text)


_PIECES = [
    "a", "b c", "key", "yes", "On", "1", "-3", "1.5", "0x1F", "1_000", "~", "null", "", "x: y",
    "2024-05-14", "2024-13-45", "a #b", "a#b", "C#", "'q'", "'it''s'", "'a: b'", '"dq"',
    '"a # b"', '"e\\"s"', "-x", "- x", "-", "?x", "? x", ":x", ": x", "&a", "*a", "!t",
    "!!str 1", "[1]", "{}", "|", ">", "@x", "`x`", "%x", "http://x", "a:b", "<<", "---",
    "...", "x\ty", "é", "k" * 1030, "a ", "  a",
]  # fmt: skip
_lines = st.tuples(
    st.integers(0, 6),  # indentation
    st.integers(0, 2),  # "- " entries
    st.none() | st.sampled_from(_PIECES),  # key
    st.sampled_from([":", ": ", " :", ":  ", ""]),
    st.sampled_from(_PIECES),  # value
    st.sampled_from(["", " # c", "#c", "   "]),
)


def _render(line: tuple) -> str:
    indent, dashes, key, colon, value, tail = line
    head = " " * indent + "- " * dashes
    return head + (f"{key}{colon}" if key is not None else "") + value + tail


@settings(max_examples=1500, deadline=None)
@given(st.lists(_lines, max_size=8), st.booleans())
def test_generated_block_text_loads_as_upstream(lines, trailing_newline):
    text = "\n".join(_render(line) for line in lines) + ("\n" if trailing_newline else "")
    assert_same(text)


_WORDS = ["a", "name", "b c", "yes", "1", "-2.5", "~", "2024-05-14", "C#", "a:b", "'q'",
          '"d q"', "-x", "http://x/y", "é", "<<", "k_1"]  # fmt: skip
_trees = st.recursive(
    st.sampled_from(_WORDS),
    lambda kids: (
        st.lists(kids, min_size=1, max_size=3)
        | st.lists(st.tuples(st.sampled_from(_WORDS), kids), min_size=1, max_size=3)
    ),
    max_leaves=12,
)


def _block(node: object, indent: int, rng: random.Random) -> list[str]:
    """Block YAML for ``node`` (lists of pairs are mappings), in one of the styles models use:
    indented or indentless sequences, compact "- key:" entries, comments, blank lines."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(node, str):
        return [pad + node]
    mapping = bool(node) and isinstance(node[0], tuple)
    for item in node:
        if rng.random() < 0.1:
            lines.append(pad + rng.choice(["# note", "", "  "]))
        key, value = item if mapping else (None, item)
        head = f"{pad}{key}:" if mapping else f"{pad}-"
        if isinstance(value, str):
            lines.append(f"{head} {value}" + rng.choice(["", "", " # c", "  "]))
        elif not mapping and rng.random() < 0.5:
            inner = _block(value, indent + 2, rng)  # compact: "- key: value" or "- - x"
            lines.append(head + " " + inner[0].lstrip(" "))
            lines.extend(inner[1:])
        else:
            step = 0 if mapping and not isinstance(value[0], tuple) and rng.random() < 0.5 else 2
            lines.append(head)
            lines.extend(_block(value, indent + step + rng.choice([0, 0, 1, 2]), rng))
    return lines


_EDITS = [
    lambda line: " " + line,
    lambda line: line[1:],
    lambda line: line.rstrip(":"),
    lambda line: line + ":",
    lambda line: line.replace(": ", ":", 1),
    lambda line: line.replace("- ", "-", 1),
    lambda line: line + "\t",
]


@settings(max_examples=1000, deadline=None)
@given(_trees, st.randoms(use_true_random=False), st.integers(0, 2))
def test_generated_block_documents_load_as_upstream(tree, rng, edits):
    lines = _block(tree if not isinstance(tree, str) else [tree], rng.choice([0, 0, 2]), rng)
    for _ in range(edits):
        i = rng.randrange(len(lines))
        lines[i] = rng.choice(_EDITS)(lines[i])
    assert_same("\n".join(lines))


@settings(max_examples=300, deadline=None)
@given(st.lists(_lines, min_size=1, max_size=8))
def test_both_paths_charge_the_same_work(lines):
    text = "\n".join(_render(line) for line in lines)
    try:
        if fast_path(text) is None:
            return
    except yaml.YAMLError:
        return
    fast, pure = UpstreamLoader(text, math.inf), UpstreamLoader(text, math.inf)
    root = _block_document(fast, text)[1]  # type: ignore[index]
    try:
        if root is not None:
            fast.charge_merges(root)
            fast.construct_document(root)
        pure.load()
    except Exception:
        return  # a constructor error: the fast path hands these to the pure loader
    assert fast.meter.spent == pytest.approx(pure.meter.spent)


def test_tabs_are_rejected_as_upstream_rejects_them():
    # Issue 10: libyaml (CSafeLoader) accepts these; upstream's pure-Python loader does not.
    for text in ("name: Faro Airport Branch\t", "name:\tFaro Airport Branch"):
        assert yaml.load(text, Loader=yaml.CSafeLoader) == {"name": "Faro Airport Branch"}
        assert outcome(ours, text) == outcome(stock, text)
        result = parse(text, "yaml")
        assert not result.ok and "cannot start any token" in result.error.message


def test_truncated_last_line_is_rejected_with_the_scanner_marks():
    text = "planet:\n  name: Xelthar\n  moons:\n  - Ixo\n  radius"
    with pytest.raises(yaml.scanner.ScannerError):
        fast_path(text)  # decided without the slow loader
    assert outcome(ours, text) == outcome(stock, text)
    assert parse(text, "yaml").error.line == 5


def test_a_document_over_budget_is_refused_on_either_path():
    block = "".join(f"key_{i}: value {i}\n" for i in range(40_000))
    flow = block + "last: [x]\n"  # one flow sequence: the slow loader reads it
    assert fast_path(flow) is None and fast_path(block) is not None
    for text in (block, flow):
        with pytest.raises(TooCostly):
            safe_load(text)
    # Both are ordinary documents upstream loads; within the budget they load here too.
    small = "".join(f"key_{i}: value {i}\n" for i in range(2_000))
    assert safe_load(small) == stock(small) and safe_load(small + "last: [x]\n")["last"] == ["x"]
    assert WORK_BUDGET > 0


def test_a_document_leaving_the_fast_path_late_is_charged_once():
    # Block lines the fast path reads before the flow sequence at the end stops it: the pure
    # loader reads the whole text again, and only its work counts against the budget.
    text = "".join(f"key_{i}: value {i}\n" for i in range(9_000)) + "last: [x]\n"
    assert fast_path(text) is None
    pure = UpstreamLoader(text, math.inf)
    pure.load()
    assert safe_load(text, budget=pure.meter.spent * 1.01)["last"] == ["x"]
    with pytest.raises(TooCostly):
        safe_load(text, budget=pure.meter.spent * 0.99)
