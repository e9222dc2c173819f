"""Issue 20, points 2, 4, 6, 9 and 10, as a user meets them: replays keyed per file, snapshot
changes that never fail a task, the gate's verdict on one line (terminal, report.json, JUnit),
inconsistent options refused before any engine, report.html that says what it shows, and
option help that names what each option takes."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from support import OPEN150_ANSWERS

TASKS = [
    {
        "task_id": task_id,
        "task_name": "Text to JSON",
        "query": "q",
        "output_type": "JSON",
        "raw_output_metric": ["a"],
    }
    for task_id in ("t1", "t2", "t3")
]
GOOD = '{"a": 1}'
BAD = "not json"


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".json", tasks=json.dumps(TASKS))
    return pytester


def write_generations(pytester: pytest.Pytester, path: str, outputs: dict[str, str]) -> str:
    target = pytester.path / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps([{"task_id": t, "generation": g} for t, g in outputs.items()]), "utf-8"
    )
    return path


def replay(pytester: pytest.Pytester, generations: str, *args: str, out: str = "out"):
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--tasks=tasks.json", f"--generations={generations}",
        f"--out={out}", *args,
    )
    report = json.loads((pytester.path / out / "report.json").read_text("utf-8"))
    return result, report


def last_summary_line(result: pytest.RunResult) -> str:
    """The verdict line, checked to be the last line before pytest's own summary."""
    lines = result.outlines
    [index] = [i for i, line in enumerate(lines) if line.startswith("structeval gate: ")]
    assert re.match(r"(=+ (short test summary info|.* in [\d.]+s) =+)$", lines[index + 1]), lines
    return lines[index]


# -- point 2: snapshots ---------------------------------------------------------------------


def test_two_submissions_named_inference_json_never_share_snapshots(project):
    a = write_generations(project, "team_a/inference.json", dict.fromkeys(("t1", "t2", "t3"), GOOD))
    b = write_generations(project, "team_b/inference.json", {"t1": GOOD, "t2": GOOD, "t3": BAD})
    first, _ = replay(project, a)
    assert first.ret == pytest.ExitCode.OK
    second, report = replay(project, b)
    # Only t3's score fails it; nothing of team_a's snapshots reaches team_b's run.
    assert second.ret == pytest.ExitCode.TESTS_FAILED
    assert report["summary"]["status"] == {"passed": 2, "failed": 1}
    assert {t["snapshot"] for t in report["tasks"]} == {"new"}
    dirs = sorted(p.name for p in (project.path / "__structeval_snapshots__").iterdir())
    assert len(dirs) == 2 and all(d.startswith("replay-inference-") for d in dirs)


def test_a_changed_snapshot_is_reported_and_never_fails_the_task(project):
    gens = write_generations(project, "gens.json", dict.fromkeys(("t1", "t2", "t3"), GOOD))
    assert replay(project, gens)[0].ret == pytest.ExitCode.OK
    write_generations(project, "gens.json", {"t1": GOOD, "t2": '{"a": 2}', "t3": GOOD})
    result, report = replay(project, gens, "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.OK
    assert [t["snapshot"] for t in report["tasks"]] == ["match", "changed", "match"]
    assert report["summary"]["status"] == {"passed": 3}
    assert report["summary"]["gate"] == {"verdict": "passed", "reasons": []}
    result.stdout.fnmatch_lines(["snapshots: 1 changed (not counted as failures; *): t2"])


def test_no_snapshots_compares_and_writes_none(project):
    gens = write_generations(project, "gens.json", dict.fromkeys(("t1", "t2", "t3"), GOOD))
    result, report = replay(project, gens, "--no-snapshots")
    assert result.ret == pytest.ExitCode.OK
    assert not (project.path / "__structeval_snapshots__").exists()
    assert "snapshots" not in json.dumps(report["summary"]["snapshots"]) or not report[
        "summary"
    ]["snapshots"]
    project.makeini("[pytest]\nstructeval_snapshots = false\n")
    result, _ = replay(project, gens)
    assert result.ret == pytest.ExitCode.OK
    assert not (project.path / "__structeval_snapshots__").exists()


# -- point 4: the verdict -------------------------------------------------------------------


def test_a_drop_and_a_regression_end_the_summary_as_one_failed_verdict(project):
    """Before, only "DROPPED by more than" higher up said why the run failed."""
    base = write_generations(project, "base.json", {"t1": GOOD, "t2": GOOD, "t3": '{"a": 1}'})
    replay(project, base, out="base")
    stored = json.loads((project.path / "base" / "report.json").read_text("utf-8"))
    assert stored["summary"]["gate"] == {"verdict": "passed", "reasons": []}
    now = write_generations(project, "now.json", {"t1": GOOD, "t2": GOOD, "t3": BAD})
    result, report = replay(project, now, "--baseline=base", "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = last_summary_line(result)
    assert re.fullmatch(
        r"structeval gate: FAILED: overall 0\.6667 dropped 0\.3333 from 1\.0000 "
        r"\(max drop 0\.01\); 1 task regressed",
        line,
    ), line
    gate = report["summary"]["gate"]
    assert gate["verdict"] == "failed" and len(gate["reasons"]) == 2
    suite = ET.parse(project.path / "junit.xml").getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["structeval_verdict"] == "failed"
    assert float(props["structeval_overall"]) == pytest.approx(report["summary"]["overall"])
    assert "dropped" in props["structeval_reasons"]


def test_a_passed_run_says_so_against_its_baseline(project):
    gens = write_generations(project, "gens.json", dict.fromkeys(("t1", "t2", "t3"), GOOD))
    replay(project, gens, out="base")
    result, _ = replay(project, gens, "--baseline=base", "--junitxml=junit.xml")
    assert result.ret == pytest.ExitCode.OK
    assert last_summary_line(result) == (
        "structeval gate: passed (overall 1.0000 vs baseline 1.0000, +0.0000; no regression)"
    )
    suite = ET.parse(project.path / "junit.xml").getroot().find("testsuite")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["structeval_verdict"] == "passed"


def test_without_baseline_a_failed_task_is_the_reason(project):
    gens = write_generations(project, "gens.json", {"t1": GOOD, "t2": BAD, "t3": BAD})
    result, report = replay(project, gens)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert last_summary_line(result) == "structeval gate: FAILED: 2 tasks failed"
    assert report["summary"]["gate"] == {"verdict": "failed", "reasons": ["2 tasks failed"]}


# -- point 6: inconsistent options ----------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model=builtin:tiny", "--max-tokens=100000"], "*max_tokens (100000) is larger than max_model_len (4096)*prompt needs room too*"),
        (["--model=builtin:tiny", "--max-drop=1.5"], "*max_drop must be in ?0, 1?*"),
        ([f"--generations={OPEN150_ANSWERS}", "--temperature=0.7"], "*--temperature cannot apply to a replay*"),
        ([f"--generations={OPEN150_ANSWERS}", "--max-tokens=64", "--dtype=float32"], "*--dtype, --max-tokens cannot apply to a replay*"),
        (["--model=builtin:tiny", "--strict-regressions"], "*--strict-regressions* needs baseline*"),
        (["--model=builtin:tiny", "--max-drop=0.1"], "*--max-drop* needs baseline*"),
        (["--model=builtin:tiny", "--api-key=k"], "*--api-key* needs endpoint*"),
        (["--model=builtin:tiny", "--serve-arg=--max-num-seqs=8"], "*--serve-arg* need serve*"),
        (["--model=builtin:tiny", "--concurrency=4"], "*--concurrency: only requests to a server*"),
    ],
)
def test_inconsistent_options_are_one_usage_error(pytester, args, message):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.errlines if line.startswith("ERROR:")]
    assert len(errors) == 1, result.errlines
    result.stderr.fnmatch_lines([message])
    assert "engine" not in result.stdout.str()


# -- point 9: report.html --------------------------------------------------------------------


class Page(HTMLParser):
    """Texts by element id, titles of <abbr>/<code>, and the Run details table."""

    def __init__(self) -> None:
        super().__init__()
        self.by_id: dict[str, str] = {}
        self.titles: dict[str, str] = {}
        self.details: list[tuple[str, str]] = []
        self._stack: list[tuple[str, dict]] = []
        self._text: list[str] = []
        self._row: list[str] = []

    def handle_starttag(self, tag, attrs):
        self._stack.append((tag, dict(attrs)))
        self._text = []

    def handle_endtag(self, tag):
        if not self._stack:
            return
        name, attrs = self._stack.pop()
        text = "".join(self._text).strip()
        if attrs.get("id"):
            self.by_id[attrs["id"]] = text
        if name in ("abbr", "span") and attrs.get("title"):
            self.titles[text] = attrs["title"]
        if name in ("th", "td"):
            self._row.append(text)
        if name == "tr":
            if len(self._row) == 2:
                self.details.append((self._row[0], self._row[1]))
            self._row = []

    def handle_data(self, data):
        self._text.append(data)


def test_report_html_labels_its_numbers_and_agrees_with_itself(project):
    gens = write_generations(
        project, "gens.json", {"t1": f"```json\n{GOOD}\n```", "t2": BAD, "t3": GOOD}
    )
    replay(project, gens)
    page = Page()
    page.feed((project.path / "out" / "report.html").read_text("utf-8"))
    assert page.by_id["overall-label"] == "StructEval-T score (mean over tasks)"
    details = dict(page.details)
    assert details["tests failed"] == "1" and details["tests passed"] == "2"
    assert details["requests failed for good"] == "0"  # meta's counter, no longer "failed 0"
    assert details["verdict"] == "failed"
    assert page.titles["strict"].startswith("strict: parse rate of the text as returned")
    assert page.titles["fence"] == "the code was taken from a ``` fence"
    assert "stripped-legend" in page.by_id


def test_compare_page_names_wrap_between_words_only():
    from pytest_structeval.report import runs

    css = runs._COMPARE_CSS
    rule = next(line for line in css.splitlines() if line.startswith(".runs td.label"))
    assert "word-break:keep-all" in rule and "break-word" not in rule


# -- point 10: option help -------------------------------------------------------------------


def test_option_help_names_what_each_option_takes(pytester):
    text = re.sub(r"\s+", " ", pytester.runpytest("--help").stdout.str())
    assert "vllm.LLM, by its Python name (max_num_seqs=64" in text
    assert "`vllm serve` command-line flag" in text and "(--serve-arg=--max-num-seqs=64)" in text
    assert "builtin:tiny" in text and "builtin:smollm2" in text
    assert "an earlier run's report.json, or its --out directory" in text
    assert "--no-snapshots" in text
