"""The task file as a pytest collector: the preflight checks, then one item per task.

As in pytest's own non-Python example (``doc/en/example/nonpython``), the file is the collector
and its entries the items; each item writes its own failure text. Items are
``pytest.Function`` objects over two small functions of this module, so fixtures (syrupy's
``snapshot``, a project's own autouse fixtures), ``-k``, ``-m``, ``--lf``, ``-n`` and JUnit
work on them as on any test. Node ids read ``<task file>::<task_id>-<Task_name>`` (``-k``'s
form of the name: no spaces) and ``<task file>::preflight::<check>``, where ``<task file>`` is
the path from the rootdir, the bare file name for a file outside it, and ``open150.json`` for
the bundled set wherever the package is installed; ``node_selection`` lets such an id be
pasted back on the command line even where pytest cannot find it as a path. A sweep (several
runs) puts each run's tasks under a collector named after the run:
``<task file>::<run>::<task_id>-<Task_name>``, so ``-k <run>`` selects one run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .tasks import BUNDLED_TASKS, Task, TaskSet

# Every item of the evaluation, so that `-m structeval` selects it alone in a project whose own
# tests run in the same session.
EVALUATION_MARKER = "structeval"
# One task per task kind (TaskSet.first_of_each_kind): what a CPU can afford with a real model.
SMOKE_MARKER = "smoke"
KIND_MARKERS = {"generation": "Text to a format", "conversion": "one format to another"}


def keyword_name(task_name: str) -> str:
    """``CSV to JSON`` -> ``CSV_to_JSON``: a form pytest's ``-k`` grammar accepts."""
    return task_name.replace(" ", "_")


def task_file_nodeid(path: Path, rootpath: Path) -> str:
    """The node id of the task file ``path`` when the plugin adds it (pytest's own collection
    did not reach it): stable across machines and install locations, so that ids shown in a
    report, JUnit classnames and ``--lf``'s cache mean the same thing everywhere."""
    if path.resolve() == BUNDLED_TASKS:
        return BUNDLED_TASKS.name
    try:
        return path.relative_to(rootpath).as_posix()
    except ValueError:
        return path.name


def split_node_args(
    args: list[str], *, file_nodeid: str, invocation_dir: Path
) -> tuple[list[str], list[str]]:
    """Split pytest's positional arguments into those pytest resolves itself and node ids of
    the task file that name no path pytest can find (a file outside the rootdir, the bundled
    set): pytest would stop at those with "file or directory not found"."""
    kept: list[str] = []
    ours: list[str] = []
    for arg in args:
        head = arg.split("::", 1)[0]
        if head == file_nodeid and not (invocation_dir / head).exists():
            ours.append(arg)
        else:
            kept.append(arg)
    return kept, ours


def node_selection(
    items: list[pytest.Item], node_args: list[str]
) -> tuple[list[pytest.Item], list[pytest.Item]]:
    """(selected, deselected) evaluation items for the node ids ``node_args``; items of other
    files (the user's own tests, from the other arguments) are kept. An id that selects
    nothing is a usage error, as pytest's own "not found"."""
    def chosen(item: pytest.Item, arg: str) -> bool:
        return item.nodeid == arg or item.nodeid.startswith(arg + "::")

    ours = [item for item in items if isinstance(item, (TaskItem, CheckItem))]
    unmatched = [arg for arg in node_args if not any(chosen(item, arg) for item in ours)]
    if unmatched:
        example = next((item.nodeid for item in ours if isinstance(item, TaskItem)), "")
        raise pytest.UsageError(
            f"not found: {', '.join(unmatched)} (no task or check of the task file has this id; "
            f"ids read like {example}: `pytest --co -q` with the same options lists them)"
        )
    deselected = [item for item in ours if not any(chosen(item, a) for a in node_args)]
    drop = set(map(id, deselected))
    return [item for item in items if id(item) not in drop], deselected


def evaluate_task(structeval_result: Any) -> None:
    """The body of every task item: the result's verdict, with the scorer's explanation."""
    if structeval_result.verdict == "xfail":
        pytest.xfail(structeval_result.message)
    if structeval_result.verdict == "fail":
        pytest.fail(structeval_result.message, pytrace=False)


def run_check(structeval_check_result: Any) -> None:
    """The body of every preflight item."""
    __tracebackhide__ = True
    if structeval_check_result.status == "skip":
        pytest.skip(structeval_check_result.detail)
    if structeval_check_result.status == "fail":
        pytest.fail(structeval_check_result.message, pytrace=False)


class TaskItem(pytest.Function):
    """One task; its verdict comes from the session's evaluation (``structeval_result``)."""

    def __init__(self, *, task: Task, smoke: bool, run: str | None = None, **kwargs: Any) -> None:
        super().__init__(callobj=evaluate_task, **kwargs)
        self.task = task
        self.run = run  # the sweep's run this item belongs to; None for a single run
        self.add_marker(EVALUATION_MARKER)
        self.add_marker(task.fmt)
        self.add_marker(task.kind)
        if smoke:
            self.add_marker(SMOKE_MARKER)
        # -k "CSV to JSON" is rewritten to CSV_to_JSON before deselection (plugin.py).
        self.extra_keyword_matches.add(keyword_name(task.task_name))

    def reportinfo(self) -> tuple[Path, int, str]:
        # No line number: the task file is data. pytest needs an int for skip reports.
        return self.path, 0, f"{self.task.task_id} ({self.task.task_name})"

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        # The verdict's message as it stands: its first line says why (pytest's short summary
        # shows it, without the "Failed: " of an exception's text), the scorer's details follow.
        if isinstance(excinfo.value, pytest.fail.Exception) and not excinfo.value.pytrace:
            return excinfo.value.msg
        return super().repr_failure(excinfo)


class CheckItem(pytest.Function):
    """One preflight check, run by name (the checks are built once the selection is known)."""

    def __init__(self, *, check: str, **kwargs: Any) -> None:
        super().__init__(callobj=run_check, **kwargs)
        self.check = check
        self.add_marker(EVALUATION_MARKER)
        self.add_marker("preflight")

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"preflight: {self.check}"


class Preflight(pytest.Collector):
    def __init__(self, *, checks: tuple[str, ...], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checks = checks

    def collect(self) -> Iterator[CheckItem]:
        for name in self.checks:
            yield CheckItem.from_parent(self, name=name, check=name)


def _task_items(
    parent: pytest.Collector, taskset: TaskSet, run: str | None
) -> Iterator[TaskItem]:
    smoke = {task.task_id for task in taskset.first_of_each_kind()}
    for task in taskset:
        yield TaskItem.from_parent(
            parent,
            name=f"{task.task_id}-{keyword_name(task.task_name)}",
            task=task,
            smoke=task.task_id in smoke,
            run=run,
        )


class RunTasks(pytest.Collector):
    """One run of a sweep: its tasks, in file order."""

    def __init__(self, *, taskset: TaskSet, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.taskset = taskset

    def collect(self) -> Iterator[TaskItem]:
        return _task_items(self, self.taskset, self.name)


class TaskFile(pytest.File):
    """A task file: its preflight checks first, then its tasks in file order (under one
    collector per run in a sweep)."""

    def __init__(
        self,
        *,
        taskset: TaskSet,
        checks: tuple[str, ...],
        runs: tuple[str, ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.taskset = taskset
        self.checks = checks
        self.runs = runs

    def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
        yield Preflight.from_parent(self, name="preflight", checks=self.checks)
        if not self.runs:
            yield from _task_items(self, self.taskset, None)
        for run in self.runs:
            yield RunTasks.from_parent(self, name=run, taskset=self.taskset)


def collect_items(collector: pytest.Collector) -> list[pytest.Item]:
    """Every item under ``collector``, for a task file that pytest's own collection did not
    reach (it lies outside the paths pytest was given, or inside site-packages). Through the
    same hooks as pytest's own collection (``Session.genitems``), so that the terminal counts
    the items and plugins that watch collection reports see them."""
    hook = collector.ihook
    hook.pytest_collectstart(collector=collector)
    report = hook.pytest_make_collect_report(collector=collector)
    hook.pytest_collectreport(report=report)
    items: list[pytest.Item] = []
    if report.passed:
        for node in report.result:
            if isinstance(node, pytest.Item):
                node.ihook.pytest_itemcollected(item=node)
                items.append(node)
            else:
                items.extend(collect_items(node))  # type: ignore[arg-type]
    return items
