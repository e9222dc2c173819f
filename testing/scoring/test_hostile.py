"""Hostile generations: each is scored (never raises) within 1 s and 200 MB, usually to 0.

Nothing is refused for its length (issue 10): the multi-megabyte cases upstream would score
are scored, and those that would make a parser run for seconds are stopped by their cost.
"""

from __future__ import annotations

import re
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import Task

# The bound: each hostile generation is scored within 1 s and 200 MB.
TIME_LIMIT_S = 1.0
MEMORY_LIMIT = 200 * 2**20

LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]><lolz>&lol9;</lolz>"
)
YAML_BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)
# Each level merges the previous one twice: 2**30 pairs copied, counted before copying.
YAML_MERGE_DOUBLING = "l0: &l0 {k0: 0}\n" + "".join(
    f"l{i}: &l{i} {{<<: [*l{i - 1}, *l{i - 1}], k{i}: {i}}}\n" for i in range(1, 31)
)
# Each level merges the previous one: 3000 levels copy 4.5M pairs.
YAML_MERGE_CHAIN = "a0: &a0 {k0: 0}\n" + "".join(
    f"a{i}: &a{i} {{<<: *a{i - 1}, k{i}: {i}}}\n" for i in range(1, 3000)
)

PROC = Path("/proc/self")


def _proc_kib(field: str) -> int:
    found = re.search(rf"^{field}:\s+(\d+) kB", (PROC / "status").read_text(), re.MULTILINE)
    assert found is not None, field
    return int(found.group(1)) * 1024


def _peak_memory(run: Callable[[], object]) -> int:
    """Bytes the process grows by, at its peak, while ``run`` runs.

    On Linux: the peak resident size (VmHWM, reset first through clear_refs) over the size
    before, which counts the C parsers' own allocations (expat, the regex engine) and costs
    nothing. Elsewhere tracemalloc, which sees Python allocations only and slows deep
    recursion twentyfold.
    """
    try:
        before = _proc_kib("VmRSS")
        (PROC / "clear_refs").write_text("5")  # reset the peak to the current size
    except OSError:
        tracemalloc.start()
        try:
            run()
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    run()
    return _proc_kib("VmHWM") - before


# (name, output_type, generation, expect_zero)
CASES = [
    ("xml_billion_laughs", "XML", LAUGHS, True),
    (
        "xml_external_entity",
        "XML",
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        True,
    ),
    (
        "xml_external_dtd",
        "XML",
        '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r>&x;</r>',
        False,
    ),  # never fetched; expat skips the entity
    (
        "xml_parameter_entity",
        "XML",
        '<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p">%p;]><r/>',
        True,
    ),
    ("yaml_alias_bomb", "YAML", YAML_BOMB, False),  # shared nodes: parsed, walked once each
    ("yaml_merge_doubling", "YAML", YAML_MERGE_DOUBLING, True),
    ("yaml_merge_chain", "YAML", YAML_MERGE_CHAIN, True),
    ("yaml_python_object_tag", "YAML", "a: !!python/object/apply:os.system ['echo pwned']", True),
    ("yaml_python_name_tag", "YAML", "!!python/name:builtins.exec", True),
    ("json_deep_nesting", "JSON", "[" * 100_000 + "]" * 100_000, True),
    ("yaml_deep_flow_nesting", "YAML", "[" * 100_000 + "]" * 100_000, True),
    ("toml_deep_nesting", "TOML", "a = " + "[" * 100_000 + "]" * 100_000, True),
    ("xml_deep_nesting", "XML", "<a>" * 100_000 + "</a>" * 100_000, False),
    ("yaml_dash_flood", "YAML", "- " * 100_000 + "x", True),
    ("yaml_deep_block_nesting", "YAML", "".join(" " * i + f"k{i}:\n" for i in range(2000)), True),
    ("json_multi_mb", "JSON", '{"a": "' + "x" * 5_000_000 + '"}', False),  # valid: scored
    ("json_brackets_in_a_string", "JSON", '{"a": "' + "[" * 1_000_000 + '"}', False),
    ("csv_multi_mb_field", "CSV", "a,b\n" + "x" * 3_000_000, False),  # keys 0, as upstream
    ("csv_many_rows", "CSV", "a,b\n" + "1,2\n" * 1_000_000, False),
    ("nul_bytes", "JSON", '{"a": "\x00\x00"}\x00', True),
    ("yaml_nul_bytes", "YAML", "a: \x00", True),
    ("lone_surrogates", "JSON", '{"a": "\ud800\udfff\ud800"}', True),
    ("escaped_surrogate", "JSON", '{"a": "\\ud800"}', True),
    ("fence_soup", "JSON", "```" * 300_000, True),
    ("fence_soup_newlines", "JSON", "```x\n" * 200_000, True),
    ("begin_code_soup", "JSON", "<|BEGIN_CODE|>" * 100_000, True),
    ("think_flood", "JSON", "<think>" * 100_000 + "{}", True),
    ("backslash_flood", "JSON", "\\" * 1_000_001, True),
    ("empty", "JSON", "", True),
    ("only_whitespace", "TOML", " \n\t " * 1000, True),
    ("toml_huge", "TOML", "a = 1\n" * 200_000, True),  # a duplicate key, found at once
    ("binary_garbage", "XML", "".join(chr(i % 0x2FF) for i in range(100_000)), True),
    ("yaml_huge_keys", "YAML", "\n".join(f"k{i}: {i}" for i in range(200_000)), True),
    ("yaml_flow_over_budget", "YAML", "[" + "[]," * 100_000 + "[]]", True),
    ("yaml_block_over_budget", "YAML", "".join(f"k{i}: {i}\n" for i in range(150_000)), True),
    # uiri toml's quadratic steps, each stopped by the work it would do.
    ("toml_quoted_dotted_header", "TOML", '["' + "a." * 50_000 + 'a"]\nx = 1', True),
    ("toml_string_array_commas", "TOML", "a = [" + '"x,y", ' * 30_000 + '"x"]', True),
    ("toml_inline_table_array", "TOML", "a = [" + "{x=1}, " * 60_000 + "{x=1}]", True),
    ("toml_deep_and_long", "TOML", "a = " + "[" * 450 + "1, " * 30_000 + "1" + "]" * 450, True),
    ("toml_equals_chain", "TOML", "a=x" + "=x" * 50_000, True),
    ("toml_escapes", "TOML", 'a = "' + "\\\\n" * 200_000 + '"', True),
    ("xml_many_elements", "XML", "<r>" + "<a/>" * 1_000_000 + "</r>", True),
    # Large documents that are cheap to parse: scored like any other.
    ("toml_inline_tables_40k", "TOML", "a = [" + "{x={y=[1,2]}}, " * 2600 + "{x=1}]", False),
    ("yaml_flow_40k", "YAML", "[" + "{a: [1, 2]}, " * 3000 + "1]", False),
    (
        "yaml_block_40k",
        "YAML",
        "".join(f"k{i}:\n  - a: 1\n    b: [x, y]\n" for i in range(1300)),
        False,
    ),
    ("xml_200k", "XML", "<r>" + "<a x='1' y='2'><b/></a>" * 8000 + "</r>", False),
    ("csv_200k", "CSV", "a,b,c\n" + "1,2,3\n" * 33_000, False),
]


@pytest.mark.parametrize(
    ("name", "output_type", "generation", "expect_zero"), CASES, ids=[c[0] for c in CASES]
)
def test_hostile_generation_is_scored_within_bounds(name, output_type, generation, expect_zero):
    task = Task(
        "h1", f"Text to {output_type}", "Please output code", output_type, ("a", "csv::a", "k0.k1")
    )
    # CPU time of the score_task call only, so other processes on the machine do not count
    # against it; memory in a second call, as measuring it may slow the parse.
    start = time.process_time()
    result = score_task(task, generation)
    elapsed = time.process_time() - start
    assert elapsed < TIME_LIMIT_S, f"{name} took {elapsed:.2f} s of CPU"
    peak = _peak_memory(lambda: score_task(task, generation))
    assert peak < MEMORY_LIMIT, f"{name} peaked at {peak / 2**20:.0f} MiB"
    assert 0.0 <= result.score <= 1.0
    if expect_zero:
        assert result.score == 0.0 and result.reasons, result.explain()
    result.explain()
    result.to_dict()


def test_corpus_has_at_least_twenty_kinds():
    assert len({c[0] for c in CASES}) >= 20


# Audit events that would mean scoring touched the outside world or ran code.
FORBIDDEN_EVENTS = frozenset(
    {
        "open",
        "socket.__new__",
        "socket.connect",
        "socket.getaddrinfo",
        "subprocess.Popen",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.fork",
        "exec",
        "compile",
        "urllib.Request",
    }
)
_watch: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if _watch and event in FORBIDDEN_EVENTS:
        _watch[-1].append(f"{event} {str(args)[:120]}")


@pytest.fixture(scope="module")
def audit() -> list[list[str]]:
    # An audit hook cannot be removed; it records only while a test pushes a list onto _watch.
    sys.addaudithook(_audit)
    return _watch


@pytest.mark.parametrize(
    ("name", "output_type", "generation", "expect_zero"), CASES, ids=[c[0] for c in CASES]
)
def test_hostile_generation_reads_no_file_opens_no_socket_runs_no_code(
    audit, name, output_type, generation, expect_zero
):
    task = Task("h1", f"Text to {output_type}", "Please output code", output_type, ("a",))
    score_task(task, generation)  # first call may import parser modules lazily: not scoring
    audit.append([])
    try:
        score_task(task, generation)
    finally:
        seen = audit.pop()
    assert seen == [], f"{name}: {seen}"
