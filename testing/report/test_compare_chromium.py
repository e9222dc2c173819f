"""The multi-run page in a real browser: headless Chromium renders it under its policy, every
run has its row, every disagreeing task its scores, and nothing from the reports became markup.

Uses the helpers of test_html_chromium (skips without Chromium). The runs are the competition's
real submissions when ../shared is present, else the bundled answers and their perturbations.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_compare import (  # noqa: F401 (fixtures)
    HOSTILE,
    SHARED_DATA,
    bundled,
    bundled_runs,
    shared_runs,
)
from test_html_chromium import chromium, run_chromium  # noqa: F401 (fixture)

from pytest_structeval.report.runs import compare_runs, load_runs, render_comparison_html


class Page(HTMLParser):
    """Run rows (label and cells) and task rows of the dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.runs: list[list[str]] = []
        self.tasks: list[list[str]] = []
        self.tags: list[str] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        classes = (dict(attrs).get("class") or "").split()
        if tag == "tr" and ("run" in classes or "task" in classes):
            self._row = []
            (self.runs if "run" in classes else self.tasks).append(self._row)
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def run_dirs(request: pytest.FixtureRequest) -> list[Path]:
    if (SHARED_DATA / "public_150.json").exists():
        return request.getfixturevalue("shared_runs")
    return request.getfixturevalue("bundled_runs")


def test_every_run_is_shown(chromium, run_dirs, tmp_path):  # noqa: F811
    comparison = compare_runs(load_runs(run_dirs))
    page = tmp_path / "compare.html"
    page.write_text(render_comparison_html(comparison), "utf-8")
    done = run_chromium(chromium, tmp_path, "--dump-dom", page.as_uri())
    dom = Page()
    dom.feed(done.stdout)
    assert [row[1] for row in dom.runs] == [r.label for r in comparison.runs]
    assert [row[3] for row in dom.runs] == [f"{row.overall:.4f}" for row in comparison.rows]
    assert [row[0] for row in dom.tasks] == [t.task_id for t in comparison.disagreements]
    assert len(dom.tasks) > 0
    first = comparison.disagreements[0]
    assert dom.tasks[0][4:] == [f"{s:.3f}" if s is not None else "–" for s in first.scores]
    # Nothing refused by the policy, no script on the page, nothing from the reports as markup.
    assert "Content Security Policy" not in done.stderr
    assert "script" not in dom.tags and "img" not in dom.tags


def test_hostile_labels_and_generations_stay_text(chromium, bundled_runs, tmp_path):  # noqa: F811
    page = tmp_path / "compare.html"
    page.write_text(render_comparison_html(compare_runs(load_runs(bundled_runs))), "utf-8")
    done = run_chromium(chromium, tmp_path, "--dump-dom", page.as_uri())
    dom = Page()
    dom.feed(done.stdout)
    assert dom.runs[3][1] == f"evil{HOSTILE}"
    assert "script" not in dom.tags and "img" not in dom.tags
    assert "alert(" not in done.stderr
