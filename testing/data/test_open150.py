"""The bundled open StructEval-T set (plugin/pytest_structeval/tasksets/open150.json) and its reference answers.

Checks that the file is valid, has the competition's task mix, is what the build script makes,
copies nothing from public_150.json, and that its answers, intact or broken on purpose, get
the scores scoring-spec §2-§4 predicts.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import toml
import yaml

from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import BUNDLED_TASKS, Task, TaskSet, load_generations

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"
TASKSETS = BUNDLED_TASKS.parent
TASKS_FILE = TASKSETS / "open150.json"
ANSWERS_FILE = TASKSETS / "open150.answers.json"
PUBLIC_FILE = ROOT.parent / "shared" / "data" / "public_150.json"

EXPECTED_COUNTS = {
    "Text to TOML": 25,
    "CSV to JSON": 14,
    "JSON to YAML": 14,
    "XML to JSON": 13,
    "TOML to JSON": 11,
    "YAML to JSON": 10,
    "TOML to YAML": 8,
    "CSV to YAML": 6,
    "XML to YAML": 6,
    "Text to XML": 6,
    "JSON to XML": 6,
    "Text to CSV": 6,
    "YAML to XML": 5,
    "XML to CSV": 5,
    "YAML to CSV": 5,
    "JSON to CSV": 4,
    "CSV to XML": 3,
    "Text to JSON": 2,
    "Text to YAML": 1,
}
CSV_NOTE = "(Only output the CSV content as plain text, starting with the header row.)"

TASKS = TaskSet.load(TASKS_FILE)
ANSWERS = load_generations(ANSWERS_FILE, TASKS)


def of_type(*types: str) -> list[Task]:
    return [task for task in TASKS if task.output_type in types]


def by_id(tasks: list[Task]) -> dict[str, object]:
    return {"argvalues": tasks, "ids": [task.task_id for task in tasks]}


def predicted(found: int, total: int, *, syntax_ok: bool = True) -> float:
    """scoring-spec §4.1: round(0.2*render + 0.8*keys, 2); keys count only when render is 1."""
    if not syntax_ok:
        return 0.0
    return round(0.2 + 0.8 * found / total, 2)


def paths_under(paths: tuple[str, ...], prefix: str) -> list[str]:
    """Paths whose tokens start with the dotted ``prefix`` (our paths use no backticks)."""
    return [p for p in paths if p == prefix or p.startswith((prefix + ".", prefix + "["))]


# ---------------------------------------------------------------- the file itself


def test_is_the_bundled_default() -> None:
    assert BUNDLED_TASKS.resolve() == TASKS_FILE.resolve()


def test_records_follow_the_public_schema_plus_metric() -> None:
    records = json.loads(TASKS_FILE.read_text(encoding="utf-8"))
    assert len(records) == 150
    for record in records:
        assert list(record) == [
            "task_id",
            "task_name",
            "rendering",
            "query",
            "output_type",
            "raw_output_metric",
        ]
        assert record["rendering"] is False
        assert record["output_type"] == record["task_name"].split(" to ")[1].upper()
        assert record["raw_output_metric"], record["task_id"]


def test_ids_are_ours_and_cannot_collide_with_the_competition() -> None:
    for task in TASKS:
        assert re.fullmatch(r"open150-[a-z]+-to-[a-z]+-\d{2}", task.task_id)
        assert not re.fullmatch(r"p_[0-9a-f]{24}", task.task_id)
        # Upstream routes on characters 3-4 of a numeric id (§2.1); ours are not numeric.
        assert not task.task_id[:6].isdigit()


def test_task_mix_matches_the_competition() -> None:
    assert Counter(task.task_name for task in TASKS) == EXPECTED_COUNTS


def test_answers_are_bare_documents_in_task_order() -> None:
    items = json.loads(ANSWERS_FILE.read_text(encoding="utf-8"))
    assert [item["task_id"] for item in items] == [task.task_id for task in TASKS]
    for item in items:
        assert set(item) == {"task_id", "generation"}
        assert "```" not in item["generation"]


def test_regeneration_is_byte_identical(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(DATA / "build_open150.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
    )
    for name in ("open150.json", "open150.answers.json"):
        assert (tmp_path / name).read_bytes() == (TASKSETS / name).read_bytes(), name


# ---------------------------------------------------------------- queries and paths


def test_queries_use_the_upstream_phrasing() -> None:
    for task in TASKS:
        query = task.query
        if task.kind == "conversion":
            head = f"Please convert the following {task.input_type} code to {task.output_type} code"
            assert query.startswith(head), task.task_id
            assert "\\n\\n<code>" in query and query.endswith("</code>"), task.task_id
        else:
            assert query.startswith(f"Please output {task.output_type} code"), task.task_id
            numbered = re.findall(r"^(\d+)\. ", query.split("Feature Requirements:\n", 1)[1], re.M)
            # One requirement per key path, as upstream's generation tasks have.
            assert numbered == [str(i) for i in range(1, len(task.raw_output_metric) + 1)]
        assert (CSV_NOTE in query) == (task.output_type == "CSV"), task.task_id


def test_paths_follow_the_per_format_conventions() -> None:
    for task in TASKS:
        answer = ANSWERS[task.task_id]
        paths = task.raw_output_metric
        if task.output_type == "CSV":
            assert all(p.startswith("csv::") for p in paths)
            header = answer.splitlines()[0].split(",")
            assert [p[len("csv::") :] for p in paths] == header
            continue
        assert not any(p.startswith("csv::") for p in paths)
        if task.output_type == "XML":
            root = re.match(r"<([A-Za-z_][\w.-]*)", answer).group(1)
            assert all(p.split(".", 1)[0] == root for p in paths), task.task_id
        else:
            load = {"JSON": json.loads, "YAML": yaml.safe_load, "TOML": toml.loads}[
                task.output_type
            ]
            root = next(iter(load(answer)))
            assert all(p.split(".", 1)[0] == root for p in paths), task.task_id


def _content(query: str) -> str:
    """The authored part of a query: the source document or the task and its requirements.

    The instruction line before it is upstream's fixed template, shared by design.
    """
    body = query.split("<code>", 1)[1] if "<code>" in query else query.split("Task:", 1)[-1]
    return " ".join(body.split())


def _windows(text: str, width: int = 60) -> set[str]:
    # Windows of bare punctuation and indentation (``"}, ] }``) say nothing about copying.
    return {
        text[i : i + width]
        for i in range(len(text) - width + 1)
        if sum(ch.isalpha() for ch in text[i : i + width]) >= 10
    }


@pytest.mark.skipif(
    not PUBLIC_FILE.exists(), reason="../shared/data/public_150.json is not present"
)
def test_no_query_is_copied_from_public_150() -> None:
    public = json.loads(PUBLIC_FILE.read_text(encoding="utf-8"))
    public_windows = set().union(*(_windows(_content(item["query"])) for item in public))
    copied = {
        task.task_id: sorted(shared)[:1]
        for task in TASKS
        if (shared := _windows(_content(task.query)) & public_windows)
    }
    assert not copied


# ---------------------------------------------------------------- scores


@pytest.mark.parametrize("task", **by_id(list(TASKS)))
def test_reference_answer_scores_full(task: Task) -> None:
    result = score_task(task, ANSWERS[task.task_id])
    assert result.score == 1.0, result.explain()
    assert result.syntax_ok and not result.missing_paths


def _drop_last_scored_key(document: dict, paths: tuple[str, ...]) -> tuple[dict, list[str]]:
    """Remove the last child of the root object that some path depends on."""
    ((root, body),) = document.items()
    for key in reversed(list(body)):
        lost = paths_under(paths, f"{root}.{key}")
        if lost:
            return {root: {k: v for k, v in body.items() if k != key}}, lost
    raise AssertionError("no root child is scored")


@pytest.mark.parametrize("task", **by_id(of_type("JSON")))
def test_json_answer_missing_a_key(task: Task) -> None:
    document, lost = _drop_last_scored_key(
        json.loads(ANSWERS[task.task_id]), task.raw_output_metric
    )
    result = score_task(task, json.dumps(document, indent=2))
    n = len(task.raw_output_metric)
    assert result.score == predicted(n - len(lost), n), result.explain()
    assert sorted(result.missing_paths) == sorted(lost)


@pytest.mark.parametrize("task", **by_id(of_type("YAML")))
def test_yaml_answer_missing_a_key(task: Task) -> None:
    document, lost = _drop_last_scored_key(
        yaml.safe_load(ANSWERS[task.task_id]), task.raw_output_metric
    )
    result = score_task(task, yaml.safe_dump(document, sort_keys=False))
    n = len(task.raw_output_metric)
    assert result.score == predicted(n - len(lost), n), result.explain()
    assert sorted(result.missing_paths) == sorted(lost)


def _break(task: Task, answer: str) -> str:
    if task.output_type == "JSON":
        return answer.rstrip()[:-1]  # the closing brace
    if task.output_type == "TOML":
        # Drop the closing quote of the first string. (Not ``a == 1``: uiri toml reads that
        # as the key ``"a ="``, so it still parses.)
        broken = re.sub(r'(= "[^"\n]*)"', r"\1", answer, count=1)
        assert broken != answer
        return broken
    return "\n".join(answer.splitlines()[:-1])  # XML: the root's end tag


@pytest.mark.parametrize("task", **by_id(of_type("JSON", "TOML", "XML")))
def test_broken_syntax_scores_zero(task: Task) -> None:
    result = score_task(task, _break(task, ANSWERS[task.task_id]))
    assert not result.syntax_ok
    assert result.score == predicted(0, 1, syntax_ok=False), result.explain()


@pytest.mark.parametrize("task", **by_id(of_type("JSON")))
def test_json_in_prose_needs_a_fence(task: Task) -> None:
    answer = ANSWERS[task.task_id]
    # No fence: the whole text is parsed (§1.2), and JSON rejects the prose.
    bare = score_task(
        task, f"Here is the JSON you asked for:\n{answer}\nLet me know if anything is missing."
    )
    assert bare.score == predicted(0, 1, syntax_ok=False), bare.explain()
    # A fence anywhere wins, and prose around it is dropped.
    fenced = score_task(task, f"Sure, here it is.\n```json\n{answer}\n```\nAnything else?")
    assert fenced.score == 1.0, fenced.explain()


def _predict_yaml(text: str, answer: str, n: int) -> float:
    """Apply §2 (safe_load, truthy) and §3 (paths start at the answer's root key) by hand."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        return predicted(0, n, syntax_ok=False)
    if not parsed:
        return predicted(0, n, syntax_ok=False)
    ((root, body),) = yaml.safe_load(answer).items()
    if isinstance(parsed, dict) and parsed.get(root) == body:
        return predicted(n, n)  # the prose became an extra key; the document is intact
    assert not isinstance(parsed, (dict, list)), "a case this predictor does not cover"
    return predicted(0, n)  # a bare string: parses, but no key path can match


@pytest.mark.parametrize(
    ("prose", "expected"),
    [
        pytest.param("Here is the YAML:\n{answer}", 1.0, id="preamble-ending-in-colon"),
        pytest.param("Sure, here it is.\n{answer}", 0.0, id="preamble-sentence"),
        pytest.param("I could not convert this document.", 0.2, id="prose-only"),
    ],
)
@pytest.mark.parametrize("task", **by_id(of_type("YAML")))
def test_yaml_after_prose(task: Task, prose: str, expected: float) -> None:
    answer = ANSWERS[task.task_id]
    text = prose.format(answer=answer)
    n = len(task.raw_output_metric)
    prediction = _predict_yaml(text, answer, n)
    assert prediction == expected  # pins which rule each case exercises
    result = score_task(task, text)
    assert result.score == prediction, result.explain()


@pytest.mark.parametrize("task", **by_id(of_type("XML")))
def test_xml_with_the_wrong_root_element(task: Task) -> None:
    answer = ANSWERS[task.task_id]
    root = re.match(r"<([A-Za-z_][\w.-]*)", answer).group(1)
    assert answer.rstrip().endswith(f"</{root}>")
    renamed = "<document" + answer[len(root) + 1 : answer.rstrip().rindex("</")] + "</document>"
    result = score_task(task, renamed)
    assert result.syntax_ok
    assert result.score == predicted(0, len(task.raw_output_metric)), result.explain()


@pytest.mark.parametrize("task", **by_id(of_type("CSV")))
def test_csv_with_a_renamed_header(task: Task) -> None:
    answer = ANSWERS[task.task_id]
    header, rest = answer.split("\n", 1)
    columns = header.split(",")
    renamed = ",".join([columns[0] + "_renamed", *columns[1:]]) + "\n" + rest
    result = score_task(task, renamed)
    n = len(task.raw_output_metric)
    assert result.score == predicted(n - 1, n), result.explain()
    assert result.missing_paths == (f"csv::{columns[0]}",)


@pytest.mark.parametrize("task", **by_id(of_type("CSV")))
def test_csv_prose_parses_but_matches_nothing(task: Task) -> None:
    # CSV never fails the syntax check (§2.2); only the header row is compared (§3.3).
    result = score_task(task, "I could not convert this document.")
    assert result.score == predicted(0, len(task.raw_output_metric)), result.explain()
