"""report.html: one self-contained page rendered from a report.json dict.

Everything is inline (CSS, a few lines of JS for filtering) and a Content-Security-Policy forbids
any fetch, so the file opens offline and from a CI artifact. Model output is data: every string
from the report goes through ``html.escape``; the only script allowed to run is ours (by hash).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from ..tasks import FORMATS
from .aggregate import HEADLINE_LABELS

STATUS_ORDER = ("failed", "xfailed", "passed", "skipped")
CODE_DISPLAY_LIMIT = 20_000  # characters of code/generation shown per task; the rest is cut
CONTEXT_LINES = 3  # lines shown around an error that lies beyond the displayed part
MAX_LISTED_PATHS = 3  # missing paths shown in the table cell; the details show all
MAX_OPEN_CHANGES = 20  # the changed-tasks table starts folded when longer

CSS = """
:root{--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700;--muted:#656d76;--line:#d0d7de;--bg2:#f6f8fa}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1400px;
padding:16px 24px;color:#1f2328}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid var(--line)}
.meta{color:var(--muted)}.meta b{color:#1f2328}
.score{font-size:40px;font-weight:700;margin-right:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap;align-items:baseline}
.card{background:var(--bg2);border:1px solid var(--line);border-radius:6px;padding:6px 12px}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--bg2);position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.bars{display:grid;grid-template-columns:60px 1fr 330px;gap:6px 12px;align-items:center;max-width:900px}
.bar{background:#eaeef2;border-radius:4px;height:18px;position:relative;overflow:hidden}
.bar .fill{background:#2f81f7;height:100%}
.bar .parse{background:#8c959f;height:4px;position:absolute;left:0;bottom:0}
.badge{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;font-weight:600;color:#fff}
.passed,.fixed,.better{background:var(--ok)}.failed,.regressed,.worse{background:var(--bad)}
.xfailed{background:var(--warn)}.skipped,.same,.new,.gone,.error{background:var(--muted)}
.dropped{color:var(--bad);font-weight:700}.held{color:var(--ok);font-weight:700}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
pre{background:var(--bg2);border:1px solid var(--line);padding:8px;overflow:auto;max-height:480px;
white-space:pre-wrap;word-break:break-all}
mark{background:#ffd33d;outline:2px solid var(--bad)}.errline{background:#ffebe9}
tr.detail>td{background:#fff;border-bottom:2px solid var(--line)}
tr.detail details>summary{cursor:pointer;color:var(--muted)}
.filters{display:flex;gap:8px;margin:8px 0}.filters[hidden]{display:none}.note{color:var(--warn)}
ul.reasons{margin:4px 0 4px 18px;padding:0}
"""

_JS = """
(function(){
  var q=document.getElementById('q'),st=document.getElementById('st'),fm=document.getElementById('fm');
  function apply(){
    var t=q.value.toLowerCase(),n=0;
    document.querySelectorAll('tr.task').forEach(function(r){
      var show=(!t||r.dataset.search.indexOf(t)>=0)&&(!st.value||r.dataset.status===st.value)
        &&(!fm.value||r.dataset.format===fm.value);
      r.hidden=!show;r.nextElementSibling.hidden=!show;if(show)n++;
    });
    document.getElementById('shown').textContent=n;
  }
  [q,st,fm].forEach(function(e){e.addEventListener('input',apply);e.addEventListener('change',apply);});
  // report.html?status=failed&format=toml&q=csv opens pre-filtered (links from CI comments).
  var p=new URLSearchParams(location.search);
  q.value=p.get('q')||'';st.value=p.get('status')||'';fm.value=p.get('format')||'';
  document.querySelector('.filters').hidden=false;apply();
  // report.html#task-<id> (and the links in the comparison) opens that task's output.
  function reveal(){
    var r=location.hash&&document.getElementById(location.hash.slice(1));
    if(r&&r.classList.contains('task')){r.nextElementSibling.querySelector('details').open=true;}
  }
  window.addEventListener('hashchange',reveal);reveal();
})();
"""


def esc(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def fmt_num(value: object, digits: int = 3) -> str:
    return (
        "–"
        if not isinstance(value, (int, float)) or isinstance(value, bool)
        else f"{value:.{digits}f}"
    )


def fmt_pct(value: object) -> str:
    return "–" if not isinstance(value, (int, float)) or isinstance(value, bool) else f"{value:.0%}"


def _width(value: object) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "0"
    return f"{max(0.0, min(1.0, float(value))) * 100:.1f}"


# The stripped-text tags of a task (scoring.extract.Extraction's closed vocabulary), explained.
STRIPPED_TAGS = {
    "fence": "the code was taken from a ``` fence",
    "begin_code": "the code was taken from BEGIN_CODE/END_CODE markers",
    "code_tag": "the code was taken from <code> tags",
    "whole": "the whole text was parsed (no fence or marker found)",
    "prose_before": "text before the code was dropped",
    "prose_after": "text after the code was dropped",
    "think": "a <think> block was dropped",
    "entities": "&lt; and &gt; were replaced by < and >",
    "unescaped": "the unicode_escape step changed the text",
}
STRICT_TITLE = "strict: parse rate of the text as returned, without extraction"
# report.json meta keys whose bare name reads like a test outcome.
META_LABELS = {
    "failed": "requests failed for good",
    "generated": "generations made",
    "cache_hits": "generations from the cache",
    "retries": "requests sent again",
}


def _badge(status: object) -> str:
    s = esc(status or "none")
    return f'<span class="badge {s}">{s}</span>'


def _script_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode("utf-8")).digest()
    return "sha256-" + base64.b64encode(digest).decode("ascii")


def error_offset(code: str, line: int | None, column: int | None) -> int | None:
    """Character offset of a 1-based (line, column) in ``code``, clamped to the text."""
    if line is None or line < 1:
        return None
    lines = code.split("\n")
    if line > len(lines):
        return len(code)
    start = sum(len(text) + 1 for text in lines[: line - 1])
    col = 1 if column is None or column < 1 else column
    return start + min(col - 1, len(lines[line - 1]))


def mark_code(code: str, line: int | None, column: int | None) -> str:
    """Escaped ``code`` with the error line highlighted and the error character in ``<mark>``.

    An error at the end of a line or of the text marks an empty position (``⏎`` / ``EOF``).
    """
    offset = error_offset(code, line, column)
    if offset is None:
        return esc(code)
    line_start = code.rfind("\n", 0, offset) + 1
    line_end = code.find("\n", offset)
    line_end = len(code) if line_end < 0 else line_end
    if offset < line_end:
        marked = f"<mark>{esc(code[offset])}</mark>{esc(code[offset + 1 : line_end])}"
    else:
        where = "EOF" if offset >= len(code) else "⏎"
        marked = f'<mark title="error here">{where}</mark>'
    return (
        esc(code[:line_start])
        + f'<span class="errline">{esc(code[line_start:offset])}{marked}</span>'
        + esc(code[line_end:])
    )


def code_block(code: str, error: Mapping[str, Any] | None) -> str:
    code = code.replace("\r\n", "\n").replace("\r", "\n")
    line = error.get("line") if error else None
    column = error.get("column") if error else None
    if len(code) <= CODE_DISPLAY_LIMIT:
        return f'<pre class="code">{mark_code(code, line, column)}</pre>'
    shown = code[:CODE_DISPLAY_LIMIT]
    parts = [
        f'<pre class="code">{mark_code(shown, line, column) if _within(shown, line) else esc(shown)}</pre>',
        f'<p class="note">Showing the first {CODE_DISPLAY_LIMIT:,} of {len(code):,} characters.</p>',
    ]
    if line is not None and not _within(shown, line):
        lines = code.split("\n")
        first = max(1, line - CONTEXT_LINES)
        window = "\n".join(lines[first - 1 : line + CONTEXT_LINES])
        parts.append(
            f'<p class="note">Around the error (lines {first}–{min(len(lines), line + CONTEXT_LINES)}):</p>'
            f'<pre class="code">{mark_code(window, line - first + 1, column)}</pre>'
        )
    return "".join(parts)


def _within(shown: str, line: int | None) -> bool:
    # The last displayed line may be cut, so it only counts when the error is before it.
    return line is None or line < shown.count("\n") + 1


def _header(report: Mapping[str, Any]) -> str:
    summary = report.get("summary") or {}
    meta = report.get("meta") or {}
    tasks = report.get("tasks") or []
    # The badges and "Run details" read the one count report.json holds (Report.statuses).
    counts: dict[str, int] = dict(summary.get("status") or {})
    if not counts:  # a report.json from before summary.status
        for t in tasks:
            counts[str(t.get("status"))] = counts.get(str(t.get("status")), 0) + 1
    label = HEADLINE_LABELS.get(str(summary.get("headline")), "overall score")
    who = [
        f"<b>{esc(meta[k])}</b>" if k == "model" else f"{k} <b>{esc(meta[k])}</b>"
        for k in ("model", "adapter", "backend", "generations")
        if meta.get(k)
    ]
    cards = [
        f'<span class="score" id="overall">{fmt_num(summary.get("overall"), 4)}</span>'
        f'<span class="card" id="overall-label">{esc(label)}</span>',
        *(
            [
                f'<span class="card" id="estimate-interval">90% range <b>{fmt_num(i[0], 4)}–{fmt_num(i[1], 4)}</b></span>'
            ]
            if (i := summary.get("estimate_interval"))
            else []
        ),
        f'<span class="card">task mean <b>{fmt_num(summary.get("task_mean"), 4)}</b></span>',
        f'<span class="card">parse rate <b>{fmt_pct(summary.get("parse_rate"))}</b></span>',
        f'<span class="card">{len(tasks)} tasks</span>',
    ]
    cards += [
        f'<span class="card">{_badge(s)} {counts[s]}</span>'
        for s in (*STATUS_ORDER, *sorted(set(counts) - set(STATUS_ORDER)))
        if counts.get(s)
    ]
    gate = summary.get("gate") or {}
    rows = [
        *(
            [("verdict", gate.get("verdict")), *(("reason", r) for r in gate.get("reasons", []))]
            if gate
            else []
        ),
        *((f"tests {s}", n) for s, n in counts.items()),
        *(
            (META_LABELS.get(k, k), v)
            for k, v in meta.items()
            if isinstance(v, (str, int, float, bool))
        ),
    ]
    extra = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return (
        "<header><h1>StructEval-T report</h1>"
        f'<p class="meta">{" · ".join(who) or "unknown model"}</p>'
        f'<div class="cards">{"".join(cards)}</div>'
        + (
            f"<details><summary>Run details</summary><table>{extra}</table></details>"
            if extra
            else ""
        )
        + "</header>"
    )


def _formats(summary: Mapping[str, Any]) -> str:
    by_format = summary.get("by_format") or {}
    rows = []
    for fmt in (*FORMATS, *sorted(set(by_format) - set(FORMATS))):
        stats = by_format.get(fmt)
        if not stats:
            continue
        rows.append(
            f'<div class="label"><b>{esc(fmt.upper())}</b></div>'
            f'<div class="bar" data-format="{esc(fmt)}" title="mean {fmt_num(stats.get("mean"))}">'
            f'<div class="fill" style="width:{_width(stats.get("mean"))}%"></div>'
            f'<div class="parse" style="width:{_width(stats.get("parse_rate"))}%"></div></div>'
            f'<div class="meta">mean <b>{fmt_num(stats.get("mean"))}</b> · n {esc(stats.get("n"))}'
            f" · parses {fmt_pct(stats.get('parse_rate'))}"
            f' · <abbr title="{esc(STRICT_TITLE)}">strict</abbr> '
            f"{fmt_pct(stats.get('strict_parse_rate'))}</div>"
        )
    return (
        '<section id="formats"><h2>By format</h2>'
        '<p class="meta">Bar: mean score; grey line under it: parse rate after extraction. '
        "strict: parse rate of the text as returned, without extraction (no fence, marker "
        "or prose removed).</p>"
        f'<div class="bars">{"".join(rows)}</div></section>'
    )


def _task_types(summary: Mapping[str, Any]) -> str:
    by_type = summary.get("by_task_type") or {}
    rows = "".join(
        f'<tr><td>{esc(name)}</td><td class="num">{esc(stats.get("n"))}</td>'
        f'<td class="num">{fmt_num(stats.get("mean"))}</td>'
        f'<td><div class="bar"><div class="fill" style="width:{_width(stats.get("mean"))}%"></div></div></td></tr>'
        for name, stats in sorted(by_type.items())
    )
    return (
        '<section id="task-types"><h2>By task type</h2><table style="max-width:700px">'
        '<tr><th>task type</th><th class="num">n</th><th class="num">mean</th><th style="width:40%"></th></tr>'
        f"{rows}</table></section>"
    )


def _comparison(comparison: Mapping[str, Any], names: Mapping[str, str]) -> str:
    paired = comparison.get("paired") or {}
    dropped = bool(comparison.get("dropped"))
    base_meta = comparison.get("baseline_meta") or {}
    who = " · ".join(f"{esc(k)} {esc(v)}" for k, v in base_meta.items())
    gate = (
        f'<span class="dropped">overall dropped by more than {fmt_num(comparison.get("max_drop"))}</span>'
        if dropped
        else '<span class="held">overall within the allowed drop</span>'
    )
    counts = comparison.get("counts") or {}
    count_cards = "".join(
        f'<span class="card">{_badge(s)} {esc(n)}</span>' for s, n in counts.items() if n
    )
    changed = [t for t in comparison.get("tasks") or [] if t.get("status") != "same"]
    rank = {s: i for i, s in enumerate(("regressed", "worse", "gone", "new", "fixed", "better"))}
    changed.sort(key=lambda t: (rank.get(str(t.get("status")), 99), t.get("delta") or 0.0))
    rows = "".join(
        f'<tr><td><a href="#task-{esc(t.get("task_id"))}"><code>{esc(t.get("task_id"))}</code></a></td>'
        f"<td>{esc(names.get(str(t.get('task_id')), ''))}</td>"
        f'<td class="num">{fmt_num(t.get("baseline"))}</td><td class="num">{fmt_num(t.get("current"))}</td>'
        f'<td class="num">{fmt_delta(t.get("delta"))}</td><td>{_badge(t.get("status"))}</td></tr>'
        for t in changed
    )
    noise = "within noise" if paired.get("noise") else "not noise"
    return (
        '<section id="comparison"><h2>Baseline comparison</h2>'
        + (f'<p class="meta">baseline: {who}</p>' if who else "")
        + f"<p>overall <b>{fmt_num(comparison.get('overall_baseline'), 4)}</b> → "
        f"<b>{fmt_num(comparison.get('overall_current'), 4)}</b> "
        f'(<b id="overall-delta">{fmt_delta(comparison.get("overall_delta"), 4)}</b>): {gate}</p>'
        f"<p>paired over {esc(paired.get('n'))} tasks: mean difference {fmt_delta(paired.get('mean_delta'), 4)}, "
        f"{fmt_pct(paired.get('confidence'))} bootstrap CI [{fmt_delta(paired.get('ci_low'), 4)}, "
        f"{fmt_delta(paired.get('ci_high'), 4)}], sign test p = {esc(_p(paired.get('sign_test_p')))} "
        f"({esc(paired.get('n_better'))} better, {esc(paired.get('n_worse'))} worse): <b>{noise}</b></p>"
        f'<div class="cards">{count_cards}</div>'
        + (
            # A long list is folded so that the rest of the page stays in reach.
            f"<details{' open' if len(changed) <= MAX_OPEN_CHANGES else ''}>"
            f"<summary><b>Changed tasks ({len(changed)})</b></summary>"
            '<table style="max-width:900px"><tr><th>task</th><th>name</th><th class="num">baseline</th>'
            f'<th class="num">now</th><th class="num">Δ</th><th>change</th></tr>{rows}</table></details>'
            if rows
            else "<p>No task changed.</p>"
        )
        + "</section>"
    )


def fmt_delta(value: object, digits: int = 3) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    return f"{value:+.{digits}f}"


def _p(value: object) -> str:
    return (
        f"{value:.3g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"
    )


def _list(items: Sequence[object], limit: int | None = None) -> str:
    shown = list(items)[:limit] if limit else list(items)
    text = ", ".join(f"<code>{esc(i)}</code>" for i in shown)
    if limit and len(items) > limit:
        text += f' <span class="meta">+{len(items) - limit} more</span>'
    return text


def _stripped(tags: Sequence[object]) -> str:
    """The stripped-text tags, each with its meaning as a title (the legend says them all)."""
    return ", ".join(
        f'<span title="{esc(STRIPPED_TAGS.get(str(t), str(t)))}"><code>{esc(t)}</code></span>'
        for t in tags
    )


def _stripped_legend() -> str:
    items = "".join(
        f"<li><code>{esc(tag)}</code>: {esc(meaning)}</li>" for tag, meaning in STRIPPED_TAGS.items()
    )
    return f'<details id="stripped-legend"><summary>stripped: what the tags mean</summary><ul>{items}</ul></details>'


def _task_rows(
    task: Mapping[str, Any], delta: Mapping[str, Any] | None, with_baseline: bool
) -> str:
    task_id = str(task.get("task_id", ""))
    fmt = str(task.get("output_type", "")).lower()
    status = str(task.get("status") or "")
    missing = list(task.get("missing_paths") or [])
    stripped = list(task.get("stripped") or [])
    error = task.get("syntax_error") or None
    search = f"{task_id} {task.get('task_name', '')}".lower()
    cells = [
        f"<td><code>{esc(task_id)}</code></td>",
        f"<td>{esc(task.get('task_name'))}</td>",
        f"<td>{esc(fmt.upper())}</td>",
        f'<td class="num">{fmt_num(task.get("score"))}</td>',
        f"<td>{_badge(status)}</td>",
        f"<td>{_stripped(stripped)}</td>",
        f"<td>{_list(missing, MAX_LISTED_PATHS) if missing else ''}</td>",
    ]
    if with_baseline:
        cells.append(
            f"<td>{fmt_num(delta.get('baseline'))} → {fmt_num(delta.get('current'))} {_badge(delta.get('status'))}</td>"
            if delta
            else "<td></td>"
        )
    details = []
    reasons = task.get("reasons") or []
    if reasons:
        details.append(
            '<ul class="reasons">' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>"
        )
    facts = [
        f"syntax ok: <b>{esc(task.get('syntax_ok'))}</b>",
        f"strict: <b>{esc(task.get('strict_ok'))}</b>",
        f"key score: <b>{fmt_num(task.get('key_score'))}</b>",
        f"paths found {esc(len(task.get('found_paths') or []))} of {esc(len(task.get('expected_paths') or []))}",
    ]
    if task.get("truncated"):
        facts.append('<span class="note">generation truncated (hit max_tokens)</span>')
    details.append(f'<p class="meta">{" · ".join(facts)}</p>')
    if error:
        where = ", ".join(
            f"{k} {esc(error.get(k))}" for k in ("line", "column") if error.get(k) is not None
        )
        details.append(
            f'<p class="syntax-error"><b>Parse error</b>{" at " + where if where else ""}: '
            f"{esc(error.get('message'))}</p>"
        )
    if missing:
        details.append(f"<p>Missing paths: {_list(missing)}</p>")
    if stripped:
        details.append(f"<p>Stripped before parsing: {_stripped(stripped)}</p>")
    code = str(task.get("code") or "")
    generation = str(task.get("generation") or "")
    details.append("<p><b>Parsed code</b></p>" + code_block(code, error))
    if generation and generation != code:
        details.append(
            "<details><summary>Raw generation</summary>"
            + code_block(generation, None)
            + "</details>"
        )
    return (
        f'<tr class="task" id="task-{esc(task_id)}" data-status="{esc(status)}" data-format="{esc(fmt)}" '
        f'data-search="{esc(search)}">{"".join(cells)}</tr>'
        f'<tr class="detail"><td colspan="{len(cells)}"><details><summary>output of {esc(task_id)}</summary>'
        f"{''.join(details)}</details></td></tr>"
    )


def _options(values: Sequence[str]) -> str:
    return "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in values)


def _tasks(report: Mapping[str, Any]) -> str:
    tasks = report.get("tasks") or []
    comparison = report.get("comparison")
    deltas = {str(t.get("task_id")): t for t in (comparison or {}).get("tasks") or []}
    with_baseline = comparison is not None
    statuses = sorted(
        {str(t.get("status")) for t in tasks}, key=lambda s: (s not in STATUS_ORDER, s)
    )
    formats = sorted({str(t.get("output_type", "")).lower() for t in tasks})
    head = "".join(
        f"<th{cls}>{name}</th>"
        for name, cls in (
            ("task", ""),
            ("name", ""),
            ("format", ""),
            ("score", ' class="num"'),
            ("status", ""),
            ("stripped", ' title="what was removed around the code before parsing (see the legend)"'),
            ("missing paths", ""),
            *([("vs baseline", "")] if with_baseline else []),
        )
    )
    rows = "".join(_task_rows(t, deltas.get(str(t.get("task_id"))), with_baseline) for t in tasks)
    return (
        # The filters stay hidden where scripts cannot run; the script shows them.
        '<section id="tasks"><h2>Tasks</h2><div class="filters" hidden>'
        '<input id="q" type="search" placeholder="filter by id or name">'
        f'<select id="st"><option value="">any status</option>{_options(statuses)}</select>'
        f'<select id="fm"><option value="">any format</option>{_options(formats)}</select>'
        f'<span class="meta"><span id="shown">{len(tasks)}</span> shown</span></div>'
        f"{_stripped_legend()}"
        f'<table id="task-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></section>'
    )


def content_security_policy(script: str | None) -> str:
    """The policy of every page we write: nothing is fetched, styles are inline, and the only
    script that runs is ``script`` (by hash; none when None)."""
    scripts = f"'{_script_hash(script)}'" if script else "'none'"
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src {scripts}; form-action 'none'; base-uri 'none'"
    )


def page_head(title: str, *, script: str | None, css: str = CSS) -> list[str]:
    """The start of a self-contained page up to ``<body>``: charset, policy, title, styles."""
    return [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{esc(content_security_policy(script))}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{css}</style></head><body>",
    ]


def render_html(report: Mapping[str, Any]) -> str:
    """The whole report page for a report.json dict (see the module docstring)."""
    summary = report.get("summary") or {}
    meta = report.get("meta") or {}
    title = f"StructEval-T · {meta.get('model') or meta.get('generations') or 'report'}"
    parts = [*page_head(title, script=_JS), _header(report)]
    if report.get("comparison") is not None:
        names = {
            str(t.get("task_id")): str(t.get("task_name", "")) for t in report.get("tasks") or []
        }
        parts.append(_comparison(report["comparison"], names))
    parts += [
        _formats(summary),
        _task_types(summary),
        _tasks(report),
        f"<script>{_JS}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)
