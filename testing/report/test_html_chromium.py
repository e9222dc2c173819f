"""report.html in a real browser: headless Chromium renders the page, runs our script under the
page's Content-Security-Policy, filters from the URL, and takes a screenshot.

Installing Chromium is the CI's job (Debian: ``apt-get install chromium``); without it these
tests skip.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_html import synthetic_report

from pytest_structeval.report.html import render_html

FLAGS = [
    "--headless",
    "--no-sandbox",  # CI containers run as root, where the sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
]


def find_chromium() -> str | None:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("chromium not found (apt-get install chromium, or set CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html(synthetic_report(with_comparison=True)), "utf-8")
    return path


def run_chromium(chromium: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


class Rows(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, dict[str, str | None]] = {}
        self.fills: dict[str, str] = {}
        self.filters_hidden: bool | None = None
        self._bar: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and a.get("class") == "task":
            self.rows[str(a["id"])] = a
        if tag == "div" and a.get("class") == "bar" and a.get("data-format"):
            self._bar = a["data-format"]
        elif tag == "div" and a.get("class") == "fill" and self._bar:
            self.fills[self._bar] = str(a.get("style"))
            self._bar = None
        if tag == "div" and a.get("class") == "filters":
            self.filters_hidden = "hidden" in a


def dump(chromium: str, tmp_path: Path, url: str) -> tuple[Rows, str, str]:
    done = run_chromium(chromium, tmp_path, "--dump-dom", url)
    rows = Rows()
    rows.feed(done.stdout)
    return rows, done.stdout, done.stderr


def test_dom_shows_tasks_bars_and_comparison(chromium, page_file, tmp_path):
    rows, dom, log = dump(chromium, tmp_path, page_file.as_uri())
    assert list(rows.rows) == [
        "task-p_ok",
        "task-p_fenced",
        "task-p_bad",
        "task-p_evil",
        "task-p_csv",
    ]
    assert not any("hidden" in r for r in rows.rows.values())
    assert rows.fills == {
        "json": "width:100.0%",
        "yaml": "width:50.0%",
        "toml": "width:0.0%",
        "xml": "width:0.0%",
        "csv": "width:100.0%",
    }
    assert 'id="comparison"' in dom and "<mark>=</mark>" in dom
    # Our script ran (it shows the filters) and the page's policy refused nothing.
    assert rows.filters_hidden is False
    assert "Content Security Policy" not in log and "alert(" not in log
    # The hostile generation stayed text: no element was made from it.
    assert "<img" not in dom and dom.count("<script") == 1


def test_url_query_filters_the_table(chromium, page_file, tmp_path):
    rows, dom, _ = dump(chromium, tmp_path, page_file.as_uri() + "?status=failed")
    visible = [rid for rid, a in rows.rows.items() if "hidden" not in a]
    assert visible == ["task-p_fenced", "task-p_evil"]
    assert '<span id="shown">2</span>' in dom

    rows, _, _ = dump(chromium, tmp_path, page_file.as_uri() + "?format=toml")
    assert [rid for rid, a in rows.rows.items() if "hidden" not in a] == ["task-p_bad"]


def test_url_fragment_opens_that_tasks_output(chromium, page_file, tmp_path):
    _, dom, _ = dump(chromium, tmp_path, page_file.as_uri() + "#task-p_bad")
    assert re.findall(r"<details open[^>]*><summary>output of (p_\w+)", dom) == ["p_bad"]


def test_screenshot(chromium, page_file, tmp_path):
    shot = tmp_path / "shot.png"
    # Opened on a task with a parse error, so the shot shows the marked position too.
    url = page_file.as_uri() + "#task-p_bad"
    run_chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert len(data) > 50_000  # a blank page compresses to a few kB
    keep = os.environ.get("STRUCTEVAL_SCREENSHOT_DIR")
    if keep:  # for a person (or a CI artifact) to look at
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "report.png")
        shutil.copy(page_file, Path(keep) / "report.html")
