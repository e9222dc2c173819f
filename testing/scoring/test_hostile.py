"""Hostile generations: each is scored (never raises) within 1 s and 200 MB, usually to 0."""

from __future__ import annotations

import sys
import time
import tracemalloc

import pytest

from pytest_structeval.scoring.formats import MAX_CODE_CHARS, MAX_TOML_CHARS, MAX_YAML_CHARS
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
    ("yaml_alias_bomb", "YAML", YAML_BOMB, False),
    ("yaml_python_object_tag", "YAML", "a: !!python/object/apply:os.system ['echo pwned']", True),
    ("yaml_python_name_tag", "YAML", "!!python/name:builtins.exec", True),
    ("json_deep_nesting", "JSON", "[" * 100_000 + "]" * 100_000, True),
    ("yaml_deep_flow_nesting", "YAML", "[" * 100_000 + "]" * 100_000, True),
    ("toml_deep_nesting", "TOML", "a = " + "[" * 100_000 + "]" * 100_000, True),
    ("xml_deep_nesting", "XML", "<a>" * 100_000 + "</a>" * 100_000, False),
    ("yaml_deep_block_nesting", "YAML", "".join(" " * i + f"k{i}:\n" for i in range(2000)), True),
    ("json_multi_mb", "JSON", '{"a": "' + "x" * 5_000_000 + '"}', True),
    ("csv_multi_mb_field", "CSV", "a,b\n" + "x" * 3_000_000, False),
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
    ("toml_huge", "TOML", "a = 1\n" * 200_000, True),
    ("binary_garbage", "XML", "".join(chr(i % 0x2FF) for i in range(100_000)), True),
    ("yaml_huge_keys", "YAML", "\n".join(f"k{i}: {i}" for i in range(200_000)), True),
    # Just under the pre-parse size limits: the slowest documents each parser still accepts.
    (
        "toml_inline_tables_at_limit",
        "TOML",
        "a = [" + "{x={y=[1,2]}}, " * (MAX_TOML_CHARS // 15 - 10) + "{x=1}]",
        False,
    ),
    (
        "yaml_flow_at_limit",
        "YAML",
        "[" + "{a: [1, 2]}, " * (MAX_YAML_CHARS // 13 - 5) + "1]",
        False,
    ),
    (
        "yaml_block_at_limit",
        "YAML",
        "".join(f"k{i}:\n  - a: 1\n    b: [x, y]\n" for i in range(MAX_YAML_CHARS // 30))[
            : MAX_YAML_CHARS - 30
        ],
        False,
    ),
    (
        "xml_at_limit",
        "XML",
        "<r>" + "<a x='1' y='2'><b/></a>" * (MAX_CODE_CHARS // 24 - 1) + "</r>",
        False,
    ),
    ("csv_at_limit", "CSV", "a,b,c\n" + "1,2,3\n" * (MAX_CODE_CHARS // 6 - 2), False),
]


@pytest.mark.parametrize(
    ("name", "output_type", "generation", "expect_zero"), CASES, ids=[c[0] for c in CASES]
)
def test_hostile_generation_is_scored_within_bounds(name, output_type, generation, expect_zero):
    task = Task(
        "h1", f"Text to {output_type}", "Please output code", output_type, ("a", "csv::a", "k0.k1")
    )
    # Time without tracemalloc (it slows allocation-heavy parsing several-fold): CPU time of the
    # score_task call only, so other processes on the machine do not count against it.
    start = time.process_time()
    result = score_task(task, generation)
    elapsed = time.process_time() - start
    assert elapsed < TIME_LIMIT_S, f"{name} took {elapsed:.2f} s of CPU"
    tracemalloc.start()
    try:
        score_task(task, generation)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
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
