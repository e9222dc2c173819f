"""Differential test: perturbed reference answers score as upstream StructEval scores them.

Each bundled task's reference answer (plugin/pytest_structeval/tasksets/open150.answers.json,
score 1.0) is perturbed in the ways model output goes wrong or merely differs: fences, prose,
think blocks, BEGIN/END tags, entities, escapes, tabs, CRLF, truncation, dropped, renamed and
retyped keys, XML roots, CSV headers, TOML arrays of tables, YAML anchors, deep nesting, long
documents. The expected score of each comes from ``upstream_oracle``, a re-derivation of the
scoring spec with the stock parsers, never from ``score_task``; where upstream itself
crashes, from the decision docs/scoring.md records. Seeded: the same cases every run.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Callable

import pytest
import toml
import upstream_oracle
import xmltodict
import yaml
from support import OPEN150_ANSWERS

from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import BUNDLED_TASKS, Task, TaskSet, load_generations

TASKS = TaskSet.load(BUNDLED_TASKS)
ANSWERS = load_generations(OPEN150_ANSWERS, TASKS)
# Tasks per output format each perturbation is applied to (seeded sample).
PER_FORMAT = 5

# What we score where upstream raises instead (docs/scoring.md, "Deviations from upstream").
CRASH_DECISIONS = {
    "AttributeError: empty <|BEGIN_CODE|> payload": lambda fmt: 0.0,
    "TypeError: csv:: path on a CSV without a header row": lambda fmt: 0.2,
    "UnicodeEncodeError writing the code file": lambda fmt: 0.0,
}

Perturb = Callable[[Task, str, random.Random], "str | None"]


# ---------------------------------------------------------------- document-level helpers


def _load(task: Task, answer: str) -> object:
    return {"JSON": json.loads, "YAML": yaml.safe_load, "TOML": toml.loads}[task.output_type](
        answer
    )


def _dump(task: Task, value: object) -> str:
    if task.output_type == "JSON":
        return json.dumps(value, indent=2, ensure_ascii=False)
    if task.output_type == "YAML":
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    return toml.dumps(value)


def _mappings(value: object) -> list[dict]:
    out, stack = [], [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            out.append(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return [m for m in out if m]


def _edit_tree(edit: Callable[[dict, str, random.Random], None]) -> Perturb:
    """A perturbation that parses a JSON/YAML/TOML answer, edits one mapping, dumps it."""

    def perturb(task: Task, answer: str, rng: random.Random) -> str | None:
        if task.output_type not in ("JSON", "YAML", "TOML"):
            return None
        value = _load(task, answer)
        mapping = rng.choice(_mappings(value))
        edit(mapping, rng.choice(list(mapping)), rng)
        return _dump(task, value)

    return perturb


def _drop(mapping: dict, key: str, rng: random.Random) -> None:
    del mapping[key]


def _rename(mapping: dict, key: str, rng: random.Random) -> None:
    mapping[key + rng.choice(["_x", "s", "Name"])] = mapping.pop(key)


def _retype(mapping: dict, key: str, rng: random.Random) -> None:
    value = mapping[key]
    mapping[key] = rng.choice([[value], {"value": value}, str(value), 0, True, [], {}])


_NEST = "__nest_here__"


def _inline(value: object) -> str:
    """A value in flow/inline syntax that JSON, YAML and TOML all read the same way."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_inline(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


def _nest(depth: int) -> Perturb:
    """One value wrapped in ``depth`` lists, written as text (the dumpers recurse too)."""

    def perturb(task: Task, answer: str, rng: random.Random) -> str | None:
        if task.output_type not in ("JSON", "YAML", "TOML"):
            return None
        value = _load(task, answer)
        mapping = rng.choice(_mappings(value))
        key = rng.choice(list(mapping))
        inner = mapping[key]
        mapping[key] = _NEST
        written = _inline(inner) if task.output_type == "TOML" else json.dumps(inner)
        if task.output_type != "TOML":
            written = written.replace(" = ", ": ")
        nested = "[" * depth + written + "]" * depth
        return _dump(task, value).replace(json.dumps(_NEST), nested).replace(_NEST, nested)

    return perturb


def _brackets_in_a_string(mapping: dict, key: str, rng: random.Random) -> None:
    mapping[key] = "[" * 250  # the example: brackets in a string are not nesting


def _long(mapping: dict, key: str, rng: random.Random) -> None:
    mapping["notes_" + key] = [f"observation number {i}, recorded in full" for i in range(1500)]


def _lines(edit: Callable[[list[str], random.Random], None]) -> Perturb:
    def perturb(task: Task, answer: str, rng: random.Random) -> str:
        lines = answer.split("\n")
        edit(lines, rng)
        return "\n".join(lines)

    return perturb


def _tab_indent(lines: list[str], rng: random.Random) -> None:
    indented = [i for i, line in enumerate(lines) if line.startswith("  ")] or [0]
    i = rng.choice(indented)
    lines[i] = "\t" + lines[i].lstrip(" ")


def _tab_trailing(lines: list[str], rng: random.Random) -> None:
    i = rng.randrange(len(lines))
    lines[i] += "\t"


def _cut_lines(lines: list[str], rng: random.Random) -> None:
    del lines[rng.randrange(1, len(lines)) :]


def _escape_in_a_value(lines: list[str], rng: random.Random) -> None:
    candidates = [i for i, line in enumerate(lines) if any(c.isalpha() for c in line[-4:])]
    i = rng.choice(candidates or [0])
    lines[i] += rng.choice(["\\n", "\\t", "\\u00e9", '\\"', "\\\\"])


def _non_ascii(lines: list[str], rng: random.Random) -> None:
    candidates = [i for i, line in enumerate(lines) if line.rstrip()[-1:].isalpha()]
    i = rng.choice(candidates or [0])
    lines[i] += rng.choice([" café", " 東京", " Zürich"])


# ---------------------------------------------------------------- per-format perturbations


def _xml(edit: Callable[[dict, random.Random], dict]) -> Perturb:
    def perturb(task: Task, answer: str, rng: random.Random) -> str | None:
        if task.output_type != "XML":
            return None
        return xmltodict.unparse(edit(xmltodict.parse(answer), rng), pretty=True)

    return perturb


def _rename_root(doc: dict, rng: random.Random) -> dict:
    ((_root, body),) = doc.items()
    return {"document": body}


def _wrap_root(doc: dict, rng: random.Random) -> dict:
    return {"root": doc}


def _xml_elements(doc: dict) -> list[dict]:
    """Elements with child elements, below the document (which holds the root only)."""
    return [m for m in _mappings(doc)[1:] if any(not k.startswith(("@", "#")) for k in m)]


def _drop_element(doc: dict, rng: random.Random) -> dict:
    element = rng.choice(_xml_elements(doc))
    del element[rng.choice([k for k in element if not k.startswith(("@", "#"))])]
    return doc


def _repeat_element(doc: dict, rng: random.Random) -> dict:
    element = rng.choice(_xml_elements(doc))
    key = rng.choice([k for k in element if not k.startswith(("@", "#"))])
    value = element[key]
    element[key] = (value if isinstance(value, list) else [value]) + [value]
    return doc


def _attribute_to_child(doc: dict, rng: random.Random) -> dict:
    for mapping in _mappings(doc):
        for key in [k for k in mapping if k.startswith("@")]:
            mapping[key[1:]] = mapping.pop(key)
    return doc


def _xml_long(doc: dict, rng: random.Random) -> dict:
    ((root, body),) = doc.items()
    notes = {"note": [f"observation number {i}, recorded in full" for i in range(1500)]}
    return {root: {**(body if isinstance(body, dict) else {"#text": body}), "notes": notes}}


def _csv(edit: Callable[[list[str], list[str], random.Random], str]) -> Perturb:
    def perturb(task: Task, answer: str, rng: random.Random) -> str | None:
        if task.output_type != "CSV":
            return None
        header, *rows = answer.split("\n")
        return edit(header.split(","), rows, rng)

    return perturb


def _csv_rename(header: list[str], rows: list[str], rng: random.Random) -> str:
    i = rng.randrange(len(header))
    header[i] = header[i].upper() if rng.random() < 0.5 else header[i] + "_1"
    return "\n".join([",".join(header), *rows])


def _csv_drop_column(header: list[str], rows: list[str], rng: random.Random) -> str:
    i = rng.randrange(len(header))
    drop = lambda fields: ",".join(f for j, f in enumerate(fields) if j != i)  # noqa: E731
    return "\n".join([drop(header), *(drop(r.split(",")) for r in rows)])


def _csv_spaces(header: list[str], rows: list[str], rng: random.Random) -> str:
    return "\n".join([", ".join(header), *rows])  # upstream keeps the spaces in the names


def _csv_quoted(header: list[str], rows: list[str], rng: random.Random) -> str:
    return "\n".join([",".join(f'"{h}"' for h in header), *rows])


def _csv_bom(header: list[str], rows: list[str], rng: random.Random) -> str:
    return "\n".join(["\ufeff" + ",".join(header), *rows])


def _csv_semicolons(header: list[str], rows: list[str], rng: random.Random) -> str:
    return "\n".join([";".join(header), *(r.replace(",", ";") for r in rows)])


def _csv_header_only(header: list[str], rows: list[str], rng: random.Random) -> str:
    return ",".join(header)


def _csv_long(header: list[str], rows: list[str], rng: random.Random) -> str:
    return "\n".join([",".join(header), *(rows * 600)])


def _csv_huge_field(header: list[str], rows: list[str], rng: random.Random) -> str:
    # An unclosed quote makes the rest one field, over csv's 131072-character limit.
    return "\n".join([",".join(header), *rows, '"' + "x" * 140_000])


def _toml_inline_tables(task: Task, answer: str, rng: random.Random) -> str | None:
    """Arrays of tables written inline (``a = [{...}]``) instead of ``[[a]]``."""
    if task.output_type != "TOML" or "[[" not in answer:
        return None
    return "\n".join(f"{k} = {_inline(v)}" for k, v in toml.loads(answer).items())


def _toml_mixed_array(task: Task, answer: str, rng: random.Random) -> str | None:
    if task.output_type != "TOML":
        return None
    return "mixed = [1, 2.5]\n" + answer  # valid TOML 1.0, rejected by uiri toml


def _yaml_anchor(task: Task, answer: str, rng: random.Random) -> str | None:
    if task.output_type != "YAML":
        return None
    head, *rest = answer.split("\n")
    body = "\n".join(rest)
    indent = " " * (len(rest[0]) - len(rest[0].lstrip(" "))) if rest else "  "
    anchored = f"x-defaults: &defaults\n  note: shared\n{head}\n{indent}<<: *defaults\n{body}"
    return anchored + "\nx-copy: *defaults"


def _yaml_flow(task: Task, answer: str, rng: random.Random) -> str | None:
    if task.output_type != "YAML":
        return None
    return yaml.safe_dump(yaml.safe_load(answer), default_flow_style=True, width=60)


def _as_json(task: Task, answer: str, rng: random.Random) -> str | None:
    if task.output_type not in ("YAML", "JSON"):
        return None
    return json.dumps(_load(task, answer), indent=rng.choice([None, 2]), ensure_ascii=False)


def _text(make: Callable[[Task, str], str]) -> Perturb:
    return lambda task, answer, rng: make(task, answer)


def _truncate(task: Task, answer: str, rng: random.Random) -> str:
    return answer[: rng.randrange(1, len(answer))]


PERTURBATIONS: dict[str, Perturb] = {
    "fence": _text(lambda t, a: f"```{t.fmt}\n{a}\n```"),
    "fence_in_prose": _text(lambda t, a: f"Here it is.\n```{t.fmt}\n{a}\n```\nDone."),
    "fence_unclosed": _text(lambda t, a: f"```\n{a}\n"),
    "fence_after_inline_backticks": _text(lambda t, a: f"Use ```x``` then\n```\n{a}\n```"),
    "first_fence_wins": _text(lambda t, a: f"```yaml\nnote: first\n```\n```{t.fmt}\n{a}\n```"),
    "prose_before": _text(lambda t, a: f"Here is the {t.output_type}:\n{a}"),
    "prose_after": _text(lambda t, a: f"{a}\nLet me know if anything is missing."),
    "think_empty": _text(lambda t, a: "<think>\n\n</think>\n\n" + a),
    "think_reasoning": _text(
        lambda t, a: "<think>\nThe task asks for a document.\n</think>\n\n" + a
    ),
    "think_one_newline": _text(lambda t, a: "<think>\n</think>\n\n" + a),
    "begin_end": _text(lambda t, a: f"<|BEGIN_CODE|>\n{a}\n<|END_CODE|>"),
    "begin_no_end": _text(lambda t, a: f"Sure! <|BEGIN_CODE|>{a}"),
    "begin_then_fence": _text(lambda t, a: f"<|BEGIN_CODE|>\nx\n<|END_CODE|>\n```\n{a}\n```"),
    "begin_empty_payload": _text(lambda t, a: f"<|BEGIN_CODE|><|END_CODE|>\n```\n{a}\n```"),
    "begin_blank_payload": _text(lambda t, a: f"<|BEGIN_CODE|>  \n  <|END_CODE|>{a}"),
    "entities": _text(lambda t, a: a.replace("<", "&lt;").replace(">", "&gt;")),
    "escape_in_a_value": _lines(_escape_in_a_value),
    "non_ascii": _lines(_non_ascii),
    "bad_escape_in_prose": _text(lambda t, a: a + "\n\\U12"),
    "tab_indent": _lines(_tab_indent),
    "tab_trailing": _lines(_tab_trailing),
    "crlf": _text(lambda t, a: a.replace("\n", "\r\n")),
    "cr": _text(lambda t, a: a.replace("\n", "\r")),
    "blank_lines_around": _text(lambda t, a: f"\n\n{a}\n  \n"),
    "truncate": _truncate,
    "cut_lines": _lines(_cut_lines),
    "drop_key": _edit_tree(_drop),
    "rename_key": _edit_tree(_rename),
    "retype_value": _edit_tree(_retype),
    "nest_150": _nest(150),
    "nest_600": _nest(600),  # past what PyYAML and uiri toml can nest, within json's reach
    "brackets_in_a_string": _edit_tree(_brackets_in_a_string),
    "long_document": _edit_tree(_long),
    "as_json": _as_json,
    "xml_rename_root": _xml(_rename_root),
    "xml_wrap_root": _xml(_wrap_root),
    "xml_drop_element": _xml(_drop_element),
    "xml_repeat_element": _xml(_repeat_element),
    "xml_attribute_to_child": _xml(_attribute_to_child),
    "xml_long_document": _xml(_xml_long),
    "csv_rename_header": _csv(_csv_rename),
    "csv_drop_column": _csv(_csv_drop_column),
    "csv_spaces_after_commas": _csv(_csv_spaces),
    "csv_quoted_header": _csv(_csv_quoted),
    "csv_bom": _csv(_csv_bom),
    "csv_semicolons": _csv(_csv_semicolons),
    "csv_header_only": _csv(_csv_header_only),
    "csv_huge_field": _csv(_csv_huge_field),
    "csv_long_document": _csv(_csv_long),
    "csv_empty": _text(lambda t, a: "```csv\n```" if t.output_type == "CSV" else a),
    "toml_inline_arrays_of_tables": _toml_inline_tables,
    "toml_mixed_array": _toml_mixed_array,
    "yaml_anchor_and_merge": _yaml_anchor,
    "yaml_flow_style": _yaml_flow,
}


def _expected(task: Task, generation: str) -> float | str:
    """The oracle's score, or the crash upstream raises instead."""
    try:
        return upstream_oracle.score(task.output_type, generation, task.raw_output_metric)
    except upstream_oracle.UpstreamCrash as crash:
        return str(crash)


@functools.cache
def _cases(name: str) -> list[tuple[Task, str, float | str]]:
    """(task, generation, expected) for ``PER_FORMAT`` seeded tasks of each format."""
    rng = random.Random(f"issue-10:{name}")
    cases = []
    for output_type in ("JSON", "YAML", "TOML", "XML", "CSV"):
        tasks = [t for t in TASKS if t.output_type == output_type]
        for task in rng.sample(tasks, min(PER_FORMAT, len(tasks))):
            generation = PERTURBATIONS[name](task, ANSWERS[task.task_id], rng)
            if generation is not None:
                cases.append((task, generation, _expected(task, generation)))
    return cases


@pytest.mark.parametrize("name", sorted(PERTURBATIONS))
def test_perturbed_answers_score_as_upstream(name):
    cases = _cases(name)
    assert cases, f"{name} applies to no task"
    for task, generation, expected in cases:
        if isinstance(expected, str):  # upstream crashes: our recorded decision
            expected = CRASH_DECISIONS[expected](task.fmt)
        result = score_task(task, generation)
        assert result.score == expected, f"{name} on {task.task_id}\n{result.explain()}"


def _outcome(value: float) -> str:
    return {1.0: "full", 0.2: "syntax only", 0.0: "zero"}.get(value, "partial")


def test_the_perturbations_exercise_every_outcome():
    # A differential test that only ever sees 1.0 would test little: the perturbations must
    # reach full, partial, syntax-only and zero scores, and each crash decision.
    expected = [e for name in PERTURBATIONS for _task, _gen, e in _cases(name)]
    outcomes = {_outcome(e) for e in expected if not isinstance(e, str)}
    crashes = {e for e in expected if isinstance(e, str)}
    assert outcomes == {"full", "partial", "syntax only", "zero"}
    assert crashes == set(CRASH_DECISIONS) - {"UnicodeEncodeError writing the code file"}


def test_oracle_reproduces_the_spec_vectors():
    # The spec's own vectors (§7), so that the oracle is checked against the spec too.
    assert upstream_oracle.score("JSON", '```json\n{"a": "x\\ny"}\n```', ("a",)) == 0.0
    assert upstream_oracle.score("YAML", "Sure! a: 1", ("Sure! a",)) == 1.0
    assert upstream_oracle.score("TOML", "a = [1, 2.5]", ("a",)) == 0.0
    assert upstream_oracle.score("XML", "<r><i>1</i></r>", ("r.i[0]", "r.i")) == 0.6
    assert upstream_oracle.score("JSON", '{"a": {"b": [{"c": 1}]}}', ("a.b.*.c", "a.*.c")) == 0.6
    with pytest.raises(upstream_oracle.UpstreamCrash):
        upstream_oracle.score("CSV", "", ("csv::x",))
