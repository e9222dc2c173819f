"""report.html from a small synthetic report: content, escaping, error marks, no network."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from pytest_structeval.report.gate import compare_with_baseline
from pytest_structeval.report.html import CODE_DISPLAY_LIMIT, error_offset, mark_code, render_html

HOSTILE = '</pre><script>alert(1)</script><img src="https://evil.example/x.png" onerror="alert(2)">'


def task(task_id: str, fmt: str, score: float, status: str, code: str, **extra) -> dict:
    record = {
        "task_id": task_id,
        "task_name": f"Text to {fmt.upper()}",
        "output_type": fmt.upper(),
        "kind": "generation",
        "score": score,
        "syntax_ok": score > 0,
        "strict_ok": score > 0,
        "key_score": score,
        "expected_paths": ["a", "b.c"],
        "found_paths": ["a", "b.c"] if score == 1.0 else ["a"],
        "missing_paths": [] if score == 1.0 else ["b.c"],
        "stripped": [],
        "syntax_error": None,
        "truncated": False,
        "reasons": [],
        "code": code,
        "generation": code,
        "status": status,
    }
    record.update(extra)
    return record


def synthetic_report(*, with_comparison: bool = False) -> dict:
    tasks = [
        task("p_ok", "json", 1.0, "passed", '{"a": 1, "b": {"c": 2}}'),
        task(
            "p_fenced",
            "yaml",
            0.5,
            "failed",
            "a: 1\nb: x",
            generation="```yaml\na: 1\nb: x\n```",
            stripped=["code fence"],
            reasons=["missing key path b.c"],
        ),
        task(
            "p_bad",
            "toml",
            0.0,
            "xfailed",
            'title = "x"\nname = = 3\nend = 1',
            syntax_error={"message": "Invalid value", "line": 2, "column": 8},
            reasons=["does not parse as TOML"],
        ),
        task(
            "p_evil",
            "xml",
            0.0,
            "failed",
            HOSTILE,
            generation=f"Sure! {HOSTILE}",
            syntax_error={"message": "not well-formed <b>token</b>", "line": 1, "column": 3},
            stripped=["leading prose <i>"],
            task_name="Text to XML <script>",
        ),
        task("p_csv", "csv", 1.0, "passed", "h1,h2\n1,2"),
    ]
    by_format = {
        "json": {"n": 1, "mean": 1.0, "parse_rate": 1.0, "strict_parse_rate": 1.0},
        "yaml": {"n": 1, "mean": 0.5, "parse_rate": 1.0, "strict_parse_rate": 0.0},
        "toml": {"n": 1, "mean": 0.0, "parse_rate": 0.0, "strict_parse_rate": 0.0},
        "xml": {"n": 1, "mean": 0.0, "parse_rate": 0.0, "strict_parse_rate": 0.0},
        "csv": {"n": 1, "mean": 1.0, "parse_rate": 1.0, "strict_parse_rate": 1.0},
    }
    report = {
        "summary": {
            "overall": 0.5,
            "task_mean": 0.5,
            "parse_rate": 0.6,
            "by_format": by_format,
            "by_task_type": {
                f"Text to {f.upper()}": {"n": 1, "mean": s["mean"]} for f, s in by_format.items()
            },
        },
        "tasks": tasks,
        "meta": {"backend": "replay", "model": "org/model<b>", "adapter": None, "engine_builds": 0},
    }
    if with_comparison:
        baseline = {
            "summary": {"overall": 0.7},
            "tasks": [
                {"task_id": "p_ok", "score": 1.0},
                {"task_id": "p_fenced", "score": 1.0},
                {"task_id": "p_bad", "score": 0.5},
                {"task_id": "p_evil", "score": 0.0},
                {"task_id": "p_csv", "score": 0.5},
            ],
            "meta": {"model": "org/base"},
        }
        current = {t["task_id"]: t["score"] for t in tasks}
        report["comparison"] = compare_with_baseline(
            current, baseline, current_overall=0.5
        ).to_dict()
    return report


class Collector(HTMLParser):
    """Tags, attributes and text of a page, as a browser's tokenizer sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def parse(page: str) -> Collector:
    collector = Collector()
    collector.feed(page)
    return collector


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(synthetic_report(with_comparison=True))


def test_header_formats_and_task_types(page):
    assert '<span class="score" id="overall">0.5000</span>' in page
    assert "<b>org/model&lt;b&gt;</b>" in page and "backend <b>replay</b>" in page
    for fmt, width in (
        ("json", "100.0"),
        ("yaml", "50.0"),
        ("toml", "0.0"),
        ("xml", "0.0"),
        ("csv", "100.0"),
    ):
        assert re.search(
            rf'<div class="bar" data-format="{fmt}"[^>]*><div class="fill" style="width:{width}%">',
            page,
        ), fmt
    assert "<td>Text to TOML</td>" in page


def test_task_table_rows_show_status_stripped_and_missing_paths(page):
    rows = [
        attrs for tag, attrs in parse(page).tags if tag == "tr" and attrs.get("class") == "task"
    ]
    assert [(r["id"], r["data-status"], r["data-format"]) for r in rows] == [
        ("task-p_ok", "passed", "json"),
        ("task-p_fenced", "failed", "yaml"),
        ("task-p_bad", "xfailed", "toml"),
        ("task-p_evil", "failed", "xml"),
        ("task-p_csv", "passed", "csv"),
    ]
    fenced = page[page.index('id="task-p_fenced"') : page.index('id="task-p_bad"')]
    assert "<code>code fence</code>" in fenced and "<code>b.c</code>" in fenced
    assert "missing key path b.c" in fenced
    assert "Raw generation" in fenced and "```yaml" in fenced


def test_syntax_error_position_is_marked(page):
    bad = page[page.index('id="task-p_bad"') : page.index('id="task-p_evil"')]
    assert "Parse error</b> at line 2, column 8: Invalid value" in bad
    assert '<span class="errline">name = <mark>=</mark> 3</span>' in bad


def test_hostile_generation_is_escaped_everywhere(page):
    parsed = parse(page)
    scripts = [t for t, _ in parsed.tags if t == "script"]
    assert len(scripts) == 1  # ours, at the end
    assert not [a for t, a in parsed.tags if t == "img"]
    assert not any(k.startswith("on") for _, attrs in parsed.tags for k in attrs)
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "not well-formed &lt;b&gt;token&lt;/b&gt;" in page
    assert "<code>leading prose &lt;i&gt;</code>" in page
    assert "Text to XML &lt;script&gt;" in page
    # The error mark sits inside the escaped text, not around raw markup.
    assert '<span class="errline">&lt;/<mark>p</mark>re&gt;&lt;script&gt;' in page
    assert "alert(1)" in "".join(parsed.text)  # shown as text


def test_no_url_outside_escaped_user_content(page):
    urls = re.findall(r"https?://[^\s\"'<>&]*", page)
    assert urls == ["https://evil.example/x.png"] * len(urls) and urls  # only the model's text
    for tag, attrs in parse(page).tags:
        for name in ("src", "href", "action"):
            value = attrs.get(name)
            assert value is None or value.startswith("#"), (tag, name, value)
    assert "@import" not in page and "url(" not in page
    csp = [
        a["content"]
        for t, a in parse(page).tags
        if a.get("http-equiv") == "Content-Security-Policy"
    ]
    assert len(csp) == 1 and csp[0].startswith("default-src 'none';")
    assert "script-src 'sha256-" in csp[0]


def test_comparison_section(page):
    section = page[page.index('id="comparison"') : page.index('id="formats"')]
    assert "<b>0.7000</b> → <b>0.5000</b>" in section
    assert '<b id="overall-delta">-0.2000</b>' in section
    assert "overall dropped by more than 0.010" in section
    assert "model org/base" in section
    assert "bootstrap CI" in section and "sign test p" in section
    changed = re.findall(r'href="#task-(p_\w+)"', section)
    assert changed == ["p_fenced", "p_bad", "p_csv"]  # regressed, worse, fixed; unchanged left out
    fenced_row = page[page.index('id="task-p_fenced"') :]
    assert '1.000 → 0.500 <span class="badge regressed">regressed</span>' in fenced_row[:3000]


def test_without_comparison_there_is_no_section_or_column():
    page = render_html(synthetic_report())
    assert 'id="comparison"' not in page and "vs baseline" not in page


def test_long_code_is_cut_with_a_note_and_a_late_error_still_shown():
    lines = [f"key_{i} = {i}" for i in range(5000)]
    lines[4000] = "oops = = 1"
    code = "\n".join(lines)
    assert len(code) > CODE_DISPLAY_LIMIT
    report = synthetic_report()
    report["tasks"] = [
        task(
            "p_long",
            "toml",
            0.0,
            "failed",
            code,
            syntax_error={"message": "bad", "line": 4001, "column": 8},
        )
    ]
    page = render_html(report)
    assert f"Showing the first {CODE_DISPLAY_LIMIT:,} of {len(code):,} characters." in page
    assert "key_4999" not in page
    assert "Around the error (lines 3998–4004)" in page
    assert '<span class="errline">oops = <mark>=</mark> 1</span>' in page
    assert len(page) < 3 * CODE_DISPLAY_LIMIT + 20_000


@pytest.mark.parametrize(
    ("code", "line", "column", "offset"),
    [
        ("ab\ncd", 1, 1, 0),
        ("ab\ncd", 2, 2, 4),
        ("ab\ncd", 2, 99, 5),  # past the end of the line: clamped to it
        ("ab\ncd", 9, 1, 5),  # past the last line: end of text
        ("ab\ncd", 2, None, 3),
        ("ab\ncd", None, None, None),
        ("ab\ncd", 0, 1, None),
    ],
)
def test_error_offset(code, line, column, offset):
    assert error_offset(code, line, column) == offset


def test_marks_at_end_of_line_and_text():
    assert (
        mark_code("ab\ncd", 1, 3)
        == '<span class="errline">ab<mark title="error here">⏎</mark></span>\ncd'
    )
    assert (
        mark_code("{", 2, 1) == '<span class="errline">{<mark title="error here">EOF</mark></span>'
    )
    assert mark_code("<a>", None, None) == "&lt;a&gt;"


def test_missing_fields_do_not_break_rendering():
    page = render_html({"summary": {}, "tasks": [{"task_id": "p_x"}], "meta": {}})
    assert 'id="task-p_x"' in page and "unknown model" in page


def test_long_change_lists_start_folded():
    report = synthetic_report(with_comparison=True)
    assert "<details open><summary><b>Changed tasks (3)</b>" in render_html(report)
    report["comparison"]["tasks"] = [
        {"task_id": f"p_{i}", "baseline": 1.0, "current": 0.0, "delta": -1.0, "status": "regressed"}
        for i in range(25)
    ]
    assert "<details><summary><b>Changed tasks (25)</b>" in render_html(report)
