"""The examples of issue 10, and the decisions taken where upstream itself crashes.

Each expected score is upstream's, computed by ``upstream_oracle`` from the scoring spec with
the stock parsers, or stated from the spec where the example says it.
"""

from __future__ import annotations

import json

import pytest
import toml
import upstream_oracle
import yaml
from support import OPEN150_ANSWERS

from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import BUNDLED_TASKS, Task, TaskSet, load_generations

TASKS = TaskSet.load(BUNDLED_TASKS)
ANSWERS = load_generations(OPEN150_ANSWERS, TASKS)


def _task(output_type: str, paths: tuple[str, ...]) -> Task:
    return Task("t1", f"Text to {output_type}", "Please output code", output_type, paths)


def _first(output_type: str) -> tuple[Task, str]:
    task = next(t for t in TASKS if t.output_type == output_type)
    return task, ANSWERS[task.task_id]


def _upstream(task: Task, generation: str) -> float:
    return upstream_oracle.score(task.output_type, generation, task.raw_output_metric)


# ---------------------------------------------------------------- the YAML parser


@pytest.mark.parametrize("line", ["  name: Faro Airport Branch\t", "  name:\tFaro Airport Branch"])
def test_a_tab_the_pure_python_loader_rejects_scores_zero(line):
    # libyaml (CSafeLoader) accepts both; upstream's yaml.safe_load does not. (A tab at the
    # very end of the generation would be stripped with the rest of the whitespace.)
    task = _task("YAML", ("airport.name", "airport.code"))
    generation = f"airport:\n{line}\n  code: FAO\n"
    assert yaml.load(generation, Loader=yaml.CSafeLoader)["airport"]["code"] == "FAO"
    assert _upstream(task, generation) == 0.0
    result = score_task(task, generation)
    assert result.score == 0.0 and "'\\t' that cannot start any token" in result.explain()


# ---------------------------------------------------------------- the size and nesting limits


def test_brackets_inside_a_json_string_are_not_nesting():
    task = _task("JSON", ("title", "code"))
    generation = json.dumps({"title": "brackets", "code": "[" * 250})
    assert _upstream(task, generation) == 1.0
    assert score_task(task, generation).score == 1.0


def test_a_block_literal_with_a_420_dash_line_scores_full():
    task = _task("YAML", ("report.title", "report.body"))
    generation = "report:\n  title: Divider\n  body: |\n    " + "-" * 420 + "\n    end\n"
    assert _upstream(task, generation) == 1.0
    assert score_task(task, generation).score == 1.0


def test_a_deeply_indented_honest_line_scores_full():
    # The old guard rejected any line indented by 400 or more characters.
    task = _task("YAML", ("a.b",))
    generation = "a:\n" + " " * 420 + "b: 1\n"
    assert _upstream(task, generation) == 1.0
    assert score_task(task, generation).score == 1.0


def _longer(task: Task, answer: str, size: int) -> str:
    """The answer with an extra root-level list of notes, ``size`` characters or more."""
    value = {"JSON": json.loads, "YAML": yaml.safe_load, "TOML": toml.loads}[task.output_type](
        answer
    )
    ((_root, body),) = value.items()
    count = size // 40 + 1
    body["field_notes"] = [
        f"observation {i:05d}, recorded at the site in full" for i in range(count)
    ]
    if task.output_type == "JSON":
        return json.dumps(value, indent=2)
    if task.output_type == "YAML":
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    return toml.dumps(value)


@pytest.mark.parametrize(
    ("output_type", "size"), [("YAML", 56_000), ("TOML", 45_000), ("JSON", 250_000)]
)
def test_long_documents_upstream_scores_full_score_full(output_type, size):
    # 56 kB of YAML (the example), a 45 kB TOML (over the old 40k limit a long honest
    # generation reaches) and 250 kB of JSON (over the old 200k limit).
    task, answer = _first(output_type)
    generation = _longer(task, answer, size)
    assert len(generation) >= size
    assert _upstream(task, generation) == 1.0
    result = score_task(task, generation)
    assert result.score == 1.0, result.explain()


# ---------------------------------------------------------------- where upstream crashes


@pytest.mark.parametrize("output_type", ["JSON", "YAML", "TOML", "XML", "CSV"])
@pytest.mark.parametrize(
    "generation",
    [
        "<|BEGIN_CODE|><|END_CODE|>",
        "<|BEGIN_CODE|>\n<|END_CODE|>",
        "Here: <|BEGIN_CODE|>",
        "<|begin_code|>\n\n",
        "<|BEGIN_CODE|><|END_CODE|>\n```\n{answer}\n```",  # the fence is never reached
    ],
)
def test_an_empty_begin_code_payload_scores_zero_as_upstream_does(output_type, generation):
    task, answer = _first(output_type)
    generation = generation.format(answer=answer)
    with pytest.raises(upstream_oracle.UpstreamCrash, match="AttributeError"):
        _upstream(task, generation)
    result = score_task(task, generation)
    assert result.score == 0.0 and not result.syntax_ok
    assert "empty <|BEGIN_CODE|> payload" in result.explain()


@pytest.mark.parametrize("payload", ["  \n  ", "\n\n", " x "])
def test_a_blank_but_not_empty_begin_code_payload_is_no_crash(payload):
    task, _answer = _first("JSON")
    generation = f"<|BEGIN_CODE|>{payload}<|END_CODE|>"
    expected = _upstream(task, generation)  # raises if upstream would crash
    result = score_task(task, generation)
    assert result.score == expected and "BEGIN_CODE" not in result.explain()


@pytest.mark.parametrize("generation", ["", "```csv\n```", "<|BEGIN_CODE|>\n \n<|END_CODE|>"])
def test_a_csv_without_a_header_row_scores_syntax_only(generation):
    # Upstream's render step passes (a DictReader is never empty), then its key check raises
    # TypeError on the missing header row and aborts the whole run. We count the paths as
    # not found: 0.2, as for a CSV whose header matches nothing.
    task, _answer = _first("CSV")
    with pytest.raises(upstream_oracle.UpstreamCrash, match="TypeError"):
        _upstream(task, generation)
    result = score_task(task, generation)
    assert result.score == 0.2 and result.syntax_ok and not result.found_paths


def test_a_csv_field_over_the_field_limit_gives_keys_zero_as_upstream():
    # csv's field limit (131072 characters) makes reading the rows raise; upstream's key
    # check then scores 0 although the header row names every path.
    task, answer = _first("CSV")
    generation = answer + '\n"' + "x" * 140_000
    assert _upstream(task, generation) == 0.2
    result = score_task(task, generation)
    assert result.score == 0.2 and result.syntax_ok and result.key_score == 0
    assert "field larger than field limit" in result.explain()
