"""Output snapshots: naming, write-new, match, diff on change, update, subsets, xdist.

The pytester runs use a small test module that calls ``check_snapshot`` with the ``snapshot``
fixture directly (no structeval plugin), reading its outputs from outputs.json so that a test
can change an output between runs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from pytest_structeval.report.snapshots import (
    SNAPSHOT_DIRNAME,
    extension_for,
    normalise_content,
    snapshot_slug,
    unified_diff,
    unused_snapshots,
)

ROOT = Path("/snapshots")
UNUSED = re.compile(r"snapshots? unused|unused snapshots?")
SLUG = "Qwen--Qwen3-4B-Instruct-2507"
TASKS = {"p_a": "json", "p_b": "yaml", "p_c": "toml", "p_d": "xml", "p_e": "csv", "p_f": "json"}
OUTPUTS = {
    "p_a": '{"a": 1}',
    "p_b": "b: 2\nc: [1, 2]\n\n\n",
    "p_c": 'title = "x"\r\n[owner]\r\nname = "y"',
    "p_d": "<root><x>1</x></root>",
    "p_e": "h1,h2\n1,2",
    "p_f": '{"f": "é ✓"}',
}

MODULE = f"""
import json
from pathlib import Path

import pytest

from pytest_structeval.report.snapshots import check_snapshot

HERE = Path(__file__).parent
TASKS = {TASKS!r}


@pytest.mark.parametrize(
    "task_id", [pytest.param(t, marks=getattr(pytest.mark, f)) for t, f in TASKS.items()]
)
def test_task(snapshot, task_id):
    content = json.loads((HERE / "outputs.json").read_text("utf-8"))[task_id]
    expected = json.loads((HERE / "expected.json").read_text("utf-8"))
    outcome = check_snapshot(snapshot, root=HERE / {SNAPSHOT_DIRNAME!r}, task_id=task_id,
                             fmt=TASKS[task_id], slug={SLUG!r}, content=content)
    assert outcome == expected.get(task_id, outcome)
"""

WRITE_COUNTER = """
import os
from pathlib import Path

from pytest_structeval.report import snapshots

_write = snapshots.StructEvalSnapshotExtension.write_snapshot_collection.__func__


@classmethod
def _counting_write(cls, *, snapshot_collection, name_order=None):
    with open(Path(__file__).parent / "writes.log", "a", encoding="utf-8") as log:
        log.write(f"{snapshot_collection.location} {os.environ.get('PYTEST_XDIST_WORKER', '-')}\\n")
    _write(cls, snapshot_collection=snapshot_collection, name_order=name_order)


snapshots.StructEvalSnapshotExtension.write_snapshot_collection = _counting_write
"""


class Project:
    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        pytester.makeini(
            "[pytest]\nmarkers =\n" + "".join(f"    {f}\n" for f in set(TASKS.values()))
        )
        pytester.makepyfile(test_suite=MODULE)
        self.set_outputs(OUTPUTS)
        self.expect({})

    @property
    def dir(self) -> Path:
        return self.pytester.path / SNAPSHOT_DIRNAME / SLUG

    def file(self, task_id: str) -> Path:
        return self.dir / f"{task_id}.{TASKS[task_id]}"

    def set_outputs(self, outputs: dict[str, str]) -> None:
        (self.pytester.path / "outputs.json").write_text(json.dumps(outputs), "utf-8")

    def expect(self, outcomes: dict[str, str]) -> None:
        (self.pytester.path / "expected.json").write_text(json.dumps(outcomes), "utf-8")

    def run(self, *args: str, subprocess: bool = False) -> pytest.RunResult:
        # The structeval plugin is not under test here: only syrupy and our helper.
        argv = ["-p", "no:structeval", "-p", "no:cacheprovider", *args]
        if subprocess:
            return self.pytester.runpytest_subprocess(*argv)
        return self.pytester.runpytest(*argv)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Project:
    return Project(pytester)


# -- naming --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "adapter", "generations", "slug"),
    [
        ("Qwen/Qwen3-4B-Instruct-2507", None, None, "Qwen--Qwen3-4B-Instruct-2507"),
        (
            "Qwen/Qwen3-4B",
            "/ckpts/run 1/checkpoint-300/",
            None,
            "Qwen--Qwen3-4B__ckpts--run_1--checkpoint-300",
        ),
        ("/models/my model/", None, None, "models--my_model"),
        (None, None, "../shared/data/inference/scored_0.77064.json", "replay-scored_0.77064-*"),
        ("ignored/when-replaying", "x", "C:\\runs\\gens.json", "replay-gens-*"),
    ],
)
def test_slug_is_readable_and_filesystem_safe(model, adapter, generations, slug):
    # A replay's name ends with a digest of the file's path (issue 20, point 2).
    pattern = re.escape(slug).replace(r"\*", "[0-9a-f]{8}") if slug.endswith("*") else re.escape(slug)
    assert re.fullmatch(pattern, snapshot_slug(model, adapter, generations))


def test_replays_of_two_files_with_the_same_name_never_share_a_directory():
    a = snapshot_slug(None, generations="team-a/inference.json")
    b = snapshot_slug(None, generations="team-b/inference.json")
    assert a.startswith("replay-inference-") and b.startswith("replay-inference-")
    assert a != b
    # The same path, whichever separator it was written with, is the same directory.
    assert snapshot_slug(None, generations="team-a\\inference.json") == a
    assert snapshot_slug(None, generations="./team-a//inference.json") == a


def test_a_model_run_is_keyed_by_the_settings_that_change_its_outputs():
    greedy = snapshot_slug("org/m")
    assert greedy == "org--m" == snapshot_slug("org/m", variant={})
    warm = snapshot_slug("org/m", variant={"temperature": 0.7})
    assert re.fullmatch(r"org--m\+[0-9a-f]{8}", warm)
    assert warm != snapshot_slug("org/m", variant={"temperature": 0.7, "seed": 1})
    assert warm == snapshot_slug("org/m", variant={"temperature": 0.7})


def test_long_slugs_are_cut_and_stay_distinct():
    a = snapshot_slug("org/" + "m" * 300)
    b = snapshot_slug("org/" + "m" * 299 + "n")
    assert len(a) <= 120 and len(b) <= 120 and a != b


def test_slug_needs_a_name():
    with pytest.raises(ValueError, match="model name or a generations file"):
        snapshot_slug(None, None, None)


def test_extension_per_format_and_slug():
    ext = extension_for(ROOT, SLUG, "TOML")
    assert ext.file_extension == "toml" and ext.slug == SLUG
    assert extension_for(ROOT, SLUG, "toml") is ext
    with pytest.raises(ValueError, match="unknown output format"):
        extension_for(ROOT, SLUG, "ini")
    with pytest.raises(ValueError, match="not filesystem-safe"):
        extension_for(ROOT, "../up", "json")


@pytest.mark.parametrize(
    ("code", "stored"),
    [
        ("a: 1", "a: 1\n"),
        ("a: 1\n\n\n", "a: 1\n"),
        ("a = 1\r\nb = 2\r", "a = 1\nb = 2\n"),
        ("", "\n"),
        ('{"s": "\ud800"}', '{"s": "\\ud800"}\n'),
    ],
)
def test_content_normalisation(code, stored):
    assert normalise_content(code) == stored


def test_unified_diff_reads_like_diff_u():
    diff = unified_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", "/x/p_b.yaml")
    assert diff.splitlines() == [
        "--- snapshot/p_b.yaml",
        "+++ current/p_b.yaml",
        "@@ -1,2 +1,2 @@",
        " a: 1",
        "-b: 2",
        "+b: 3",
    ]


def test_unused_snapshots_by_task_id(tmp_path):
    for name in ("p_a.json", "p_old.yaml", ".p_x.json.tmp", "notes.txt"):
        (tmp_path / name).write_text("x\n")
    assert unused_snapshots(tmp_path, ["p_a", "p_b"]) == [tmp_path / "p_old.yaml"]
    assert unused_snapshots(tmp_path / "missing", ["p_a"]) == []


# -- through syrupy ----------------------------------------------------------------------


def test_first_run_writes_one_native_file_per_task_without_failing(project):
    project.expect(dict.fromkeys(TASKS, "new"))
    result = project.run()
    result.assert_outcomes(passed=len(TASKS))
    result.stdout.fnmatch_lines([f"*{len(TASKS)} snapshots generated*"])
    assert sorted(p.name for p in project.dir.iterdir()) == sorted(
        f"{t}.{f}" for t, f in TASKS.items()
    )
    for task_id, code in OUTPUTS.items():
        assert project.file(task_id).read_bytes() == normalise_content(code).encode("utf-8")
    assert project.file("p_c").read_text("utf-8") == 'title = "x"\n[owner]\nname = "y"\n'
    umask = os.umask(0o022)
    os.umask(umask)
    assert project.file("p_a").stat().st_mode & 0o777 == 0o666 & ~umask
    assert "Can not relate" not in result.stdout.str()


def test_second_run_matches(project):
    project.run().assert_outcomes(passed=len(TASKS))
    project.expect(dict.fromkeys(TASKS, "match"))
    result = project.run()
    result.assert_outcomes(passed=len(TASKS))
    result.stdout.fnmatch_lines([f"*{len(TASKS)} snapshots passed*"])


def test_changed_output_fails_with_a_readable_diff_and_keeps_the_file(project):
    project.run().assert_outcomes(passed=len(TASKS))
    before = project.file("p_b").read_text("utf-8")
    project.set_outputs({**OUTPUTS, "p_b": "b: 3\nc: [1, 2]\n"})
    result = project.run()
    result.assert_outcomes(passed=len(TASKS) - 1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*SnapshotMismatch: output of p_b differs from its snapshot *p_b.yaml",
            "*run with --snapshot-update to accept the new output*",
            "*--- snapshot/p_b.yaml",
            "*+++ current/p_b.yaml",
            "*-b: 2",
            "*+b: 3",
            "* c: ?1, 2?",
        ]
    )
    assert project.file("p_b").read_text("utf-8") == before


def test_snapshot_update_accepts_the_change(project):
    project.run().assert_outcomes(passed=len(TASKS))
    project.set_outputs({**OUTPUTS, "p_b": "b: 3\n"})
    project.expect({"p_b": "updated", "p_a": "match"})
    result = project.run("--snapshot-update")
    result.assert_outcomes(passed=len(TASKS))
    result.stdout.fnmatch_lines(["*1 snapshot updated*"])
    assert project.file("p_b").read_text("utf-8") == "b: 3\n"
    project.expect(dict.fromkeys(TASKS, "match"))
    project.run().assert_outcomes(passed=len(TASKS))


@pytest.mark.parametrize(
    "selection",
    [("-k", "p_a or p_c"), ("-m", "toml"), ("-k", "not p_b"), ("test_suite.py::test_task[p_d]",)],
    ids=["k-ids", "m-format", "k-not", "node-id"],
)
def test_a_subset_run_neither_fails_on_nor_deletes_the_other_snapshots(project, selection):
    project.run().assert_outcomes(passed=len(TASKS))
    files = sorted(project.dir.iterdir())
    result = project.run(*selection)
    assert result.ret == 0
    assert not UNUSED.search(result.stdout.str())
    result = project.run(*selection, "--snapshot-update")
    assert result.ret == 0
    assert sorted(project.dir.iterdir()) == files


def test_other_models_snapshots_are_never_unused_or_deleted(project):
    other = project.pytester.path / SNAPSHOT_DIRNAME / "replay-scored_0.4827"
    other.mkdir(parents=True)
    (other / "p_a.json").write_text("{}\n", "utf-8")
    (other / "p_gone.toml").write_text("a = 1\n", "utf-8")
    project.run().assert_outcomes(passed=len(TASKS))
    result = project.run("--snapshot-update")
    assert result.ret == 0
    assert not UNUSED.search(result.stdout.str())
    assert sorted(p.name for p in other.iterdir()) == ["p_a.json", "p_gone.toml"]


def test_xdist_writes_every_snapshot_file_exactly_once(project):
    project.pytester.makeconftest(WRITE_COUNTER)
    project.expect(dict.fromkeys(TASKS, "new"))
    result = project.run("-n", "2", subprocess=True)
    result.assert_outcomes(passed=len(TASKS))
    writes = (project.pytester.path / "writes.log").read_text("utf-8").splitlines()
    locations = [line.rsplit(" ", 1)[0] for line in writes]
    workers = {line.rsplit(" ", 1)[1] for line in writes}
    assert sorted(locations) == sorted(str(project.file(t)) for t in TASKS)
    assert workers <= {"gw0", "gw1"}
    assert not [p for p in project.dir.iterdir() if p.name.startswith(".")]  # no temp files left
    for task_id, code in OUTPUTS.items():
        assert project.file(task_id).read_text("utf-8") == normalise_content(code)

    # A second parallel run matches and writes nothing.
    (project.pytester.path / "writes.log").unlink()
    project.expect(dict.fromkeys(TASKS, "match"))
    project.run("-n", "2", subprocess=True).assert_outcomes(passed=len(TASKS))
    assert not (project.pytester.path / "writes.log").exists()


def test_output_variant_holds_only_the_output_changing_settings_that_differ():
    from pytest_structeval.settings import Settings

    assert Settings.of(model="org/m", concurrency=4).output_variant() == {}
    variant = Settings.of(model="org/m", temperature=0.7, max_model_len=8192).output_variant()
    assert variant == {"temperature": 0.7, "max_model_len": 8192}
