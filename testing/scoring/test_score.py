from __future__ import annotations

import json

from pytest_structeval.scoring.score import TaskScore, score_task
from pytest_structeval.tasks import Task


def _task(output: str, paths: tuple[str, ...] | None, name: str = "Text to JSON") -> Task:
    return Task("t1", name, "Please output code", output, paths)  # type: ignore[arg-type]


def test_formula_and_rounding():
    task = _task("JSON", ("a", "b", "c"))
    result = score_task(task, '{"a": 1, "b": 2}')
    assert result.syntax_ok and result.key_score == round(2 / 3, 4)
    assert result.score == round(0.2 + 0.8 * 2 / 3, 2) == 0.73
    assert result.found_paths == ("a", "b") and result.missing_paths == ("c",)


def test_spec_vector_decode_breaks_json():
    result = score_task(_task("JSON", ("a",)), '```json\n{"a": "x\\ny"}\n```')
    assert not result.syntax_ok and result.score == 0.0 and result.syntax_error is not None


def test_fenced_is_valid_only_after_extraction():
    result = score_task(_task("JSON", ("a",)), 'Here:\n```json\n{"a": 1}\n```')
    assert result.score == 1.0 and result.syntax_ok and not result.strict_ok
    assert "fence" in result.stripped and "prose_before" in result.stripped
    assert "valid only after extraction" in result.explain()


def test_prose_yaml_gets_syntax_only():
    result = score_task(_task("YAML", ("planet.name",)), "Here is the YAML you asked for.")
    assert result.score == 0.2 and result.syntax_ok and not result.strict_ok


def test_empty_csv_scores_syntax_only():
    result = score_task(_task("CSV", ("csv::x",), "Text to CSV"), "")
    assert result.score == 0.2


def test_truncation_is_reported():
    result = score_task(_task("JSON", ("a",)), '{"a": {"b": [1, 2', finish_reason="length")
    assert result.truncated and "truncated" in result.explain()
    assert score_task(_task("JSON", ("a",)), '{"a": {"b": [1, 2').truncated


def test_derived_paths_when_task_has_none():
    task = Task("t2", "JSON to YAML", 'convert.\\n\\n<code>{"p": {"n": 1}}</code>', "YAML")
    result = score_task(task, "p:\n  n: 1\n")
    assert (
        result.paths_source == "derived"
        and result.expected_paths == ("p.n",)
        and result.score == 1.0
    )


def test_explain_caps_missing_list():
    task = _task("JSON", tuple(f"k{i}" for i in range(20)))
    text = score_task(task, '{"z": 1}').explain()
    assert "and 12 more" in text and "syntax 1" in text


def test_dict_round_trip_is_json_safe():
    result = score_task(_task("JSON", ("a",)), "{oops")
    data = json.loads(json.dumps(result.to_dict()))
    again = TaskScore.from_dict(data)
    assert again == result and again.syntax_error is not None and again.syntax_error.line == 1


def test_strict_mode():
    task = _task("YAML", ("a",))
    assert score_task(task, "just prose", mode="strict").score == 0.0
    assert score_task(task, "<code>\na: 1\n</code>", mode="strict").score == 1.0


def test_derived_xml_paths_use_upstream_xmltodict_semantics():
    query = 'convert.\\n\\n<code>{"library": {"name": "L", "books": [{"t": 1}, {"t": 2}]}}</code>'
    task = Task("t1", "JSON to XML", query, "XML")
    repeated = "<library><name>L</name><books><t>1</t></books><books><t>2</t></books></library>"
    wrapped = (
        "<library><name>L</name><books><book><t>1</t></book><book><t>2</t></book></books></library>"
    )
    single = "<library><name>L</name><books><t>1</t></books></library>"
    generic_root = "<root>" + repeated + "</root>"
    assert score_task(task, repeated).score == 1.0
    # books.book is a list, books is a dict: books[0] fails (spec §3.3)
    assert score_task(task, wrapped).score == round(0.2 + 0.8 / 3, 2)
    # one <books> stays a dict, so [0] fails as upstream
    assert score_task(task, single).score == round(0.2 + 0.8 / 3, 2)
    # the first token must be the source's root element: a placeholder <root> around it is a
    # path level in xmltodict's tree, so it fails as upstream (the estimate's interval credits it)
    assert score_task(task, generic_root).score == 0.2
    assert score_task(task, generic_root).unwrapped_key_score == 1.0
    assert score_task(task, "<shelf>" + repeated + "</shelf>").score == 0.2


def test_csv_source_to_xml_root_nobody_names_is_credited_only_in_the_interval():
    # the headers name no document element; the grader's paths name some fixed one, so the
    # root a model picks is not bound in the score, only in the interval's upside
    task = Task("t1", "CSV to XML", "convert.\\n\\n<code>a,b.c\n1,2\n</code>", "XML")
    bound = score_task(task, "<planet><a>1</a><b><c>2</c></b></planet>")
    assert (bound.score, bound.unwrapped_key_score) == (0.2, 1.0)
    assert score_task(task, "<planet>x</planet>").unwrapped_key_score == 0.0


def test_csv_source_to_xml_anchored_at_the_root_every_header_names():
    task = Task("t1", "CSV to XML", "convert.\\n\\n<code>g.a,g.b.c\n1,2\n</code>", "XML")
    right = score_task(task, "<g><a>1</a><b><c>2</c></b></g>")
    assert (right.score, right.unwrapped_key_score) == (1.0, None)
    assert score_task(task, "<root><g><a>1</a><b><c>2</c></b></g></root>").score == 0.2
    assert score_task(task, "<planet><a>1</a><b><c>2</c></b></planet>").score == 0.2


def test_header_only_csv_conversion_is_partial():
    query = 'convert.\\n\\n<code>[{"a": 1, "b": 2}, {"a": 3, "b": 4}]</code>'
    task = Task("t1", "JSON to CSV", query, "CSV")
    assert score_task(task, "a,b\n1,2\n3,4\n").score == 1.0
    assert score_task(task, "a,b\n").score == round(0.2 + 0.8 * 2 / 4, 2)
    assert score_task(task, "a,b\n1,2\n").score == round(0.2 + 0.8 * 3 / 4, 2)
