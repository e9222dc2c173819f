from __future__ import annotations

import pytest
import upstream_oracle
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_structeval.scoring.formats import parse
from pytest_structeval.scoring.paths import PathSyntaxError, path_exists, tokenize_path


def test_tokenize():
    assert tokenize_path("a.b[0].c") == ["a", "b", "[0]", "c"]
    assert tokenize_path("`x.y`.z") == ["x.y", "z"]
    assert tokenize_path("museum.galleries[0].artworks.*.title") == [
        "museum",
        "galleries",
        "[0]",
        "artworks",
        "*",
        "title",
    ]
    assert tokenize_path("a..b") == ["a", "b"] and tokenize_path(".a") == ["a"]
    assert tokenize_path("csv::a.b[0]") == ["csv::a.b[0]"]
    with pytest.raises(PathSyntaxError):
        tokenize_path("a[0")


DOC = {"a": {"b": [{"c": 1}]}}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b.*.c", True),
        ("a.b[*].c", False),
        ("a.b.0.c", False),
        ("a.*.c", False),
        ("a.b[-1].c", False),
        ("", True),
        ("a.b[0].c", True),
        ("a[0", False),
    ],
)
def test_spec_vectors(path, expected):
    assert path_exists(DOC, path) is expected


def test_backtick_key():
    assert path_exists({"x.y": 1}, "`x.y`")


def test_xml_paths():
    value = parse(
        '<library name="City"><book id="b1"><title>A</title></book><book id="b2"><title lang="en">B</title></book>'
        "<shelf><item>1</item></shelf><empty/></library>",
        "xml",
    ).value
    cases = {
        "library.@name": True,
        "library.name": False,
        "library.book[1].@id": True,
        "library.book.*.title": True,
        "library.book[1].title.#text": True,
        "library.shelf.item[0]": False,
        "library.empty": True,
        "library.book[0].id": False,
    }
    for path, expected in cases.items():
        assert path_exists(value, path) is expected, path
    single = parse("<r><i>1</i></r>", "xml").value
    assert not path_exists(single, "r.i[0]") and path_exists(single, "r.i")


def test_csv_headers():
    table = parse("name,habitat.region\nx,y", "csv").value
    assert path_exists(table, "csv::habitat.region") and not path_exists(table, "csv::habitat")
    assert not path_exists(parse("", "csv").value, "csv::x")
    assert not path_exists({"x": 1}, "csv::x")  # a literal key lookup on non-CSV output


def test_yaml_non_string_keys_do_not_match():
    value = parse("on: 1\n1: x\n", "yaml").value
    assert not path_exists(value, "on") and not path_exists(value, "1")


def test_shared_nodes_are_walked_once_and_answered_exactly():
    # 10**30 routes through 30 layers of shared lists (a YAML alias bomb's shape): upstream's
    # recursive any() would never finish; each (node, position) state is walked once here.
    layer: object = [{"x": 0}]
    for _ in range(30):
        layer = [layer] * 10
    stars = ".".join(["*"] * 31)
    assert path_exists(layer, stars + ".x")
    assert not path_exists(layer, stars + ".missing")
    assert not path_exists(layer, stars + ".*.x")


_keys = st.text(alphabet="abcxyz_@#", min_size=1, max_size=4)
_trees = st.recursive(
    st.none() | st.integers(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(_keys, children, max_size=3),
    max_leaves=12,
)


_path_parts = st.lists(
    st.sampled_from(["a", "b", "x", "@a", "#b", "*", "[0]", "[1]", "[-1]", "[*]", "`a.b`"]),
    max_size=5,
)


@settings(max_examples=500, deadline=None)
@given(_trees, _path_parts)
def test_matcher_agrees_with_recursive_oracle(tree, parts):
    path = ".".join(parts).replace(".[", "[")
    assert path_exists(tree, path) is upstream_oracle.exists(tree, tokenize_path(path))


@st.composite
def _dags(draw: st.DrawFn) -> object:
    """Lists and dicts whose children are earlier nodes: shared, as YAML aliases make them."""
    nodes: list[object] = [draw(st.none() | st.integers())]
    for _ in range(draw(st.integers(1, 8))):
        children = draw(st.lists(st.sampled_from(nodes), max_size=3))
        if draw(st.booleans()):
            nodes.append(children)
        else:
            nodes.append({draw(_keys): child for child in children})
    return nodes[-1]


@settings(max_examples=500, deadline=None)
@given(_dags(), _path_parts)
def test_matcher_agrees_with_recursive_oracle_on_shared_nodes(dag, parts):
    path = ".".join(parts).replace(".[", "[")
    assert path_exists(dag, path) is upstream_oracle.exists(dag, tokenize_path(path))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet="abc_", min_size=1, max_size=4), min_size=1, max_size=5))
def test_plain_dotted_paths_round_trip(keys):
    assert tokenize_path(".".join(keys)) == keys
    tree: object = 1
    for key in reversed(keys):
        tree = {key: tree}
    assert path_exists(tree, ".".join(keys))


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_tokenize_never_crashes_except_unclosed_bracket(path):
    try:
        tokens = tokenize_path(path)
    except PathSyntaxError:
        assert "[" in path
    else:
        assert all(tokens)
