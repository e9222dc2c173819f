"""The pytest layer: options, collection, fixtures and hooks over ``core.Evaluation``.

One ``StructevalSession`` (``session.py``) per pytest session lives in ``config.stash``; its
methods are the hooks of the evaluation, and this module builds it, registers it and holds the
fixtures the items use. It exists only when the command line asks for an evaluation (``--model``, ``--tasks``,
``--generations``, ...): an ordinary ``pytest`` run in a repository with the plugin installed
gets no task. The task file becomes a collector (``collect.TaskFile``): when pytest's own
collection reaches it, pytest collects it; otherwise (the usual case: a task file elsewhere, or
the bundled set inside the package) the plugin adds its items to the session. Generation runs
once, lazily, in a session fixture, for exactly the tasks left after ``-k``/``-m``/``--lf``;
each item scores and judges its own output through the core, and the controller writes the
reports at the end.
"""

from __future__ import annotations

import os

import pytest

# The key under which pytest's junitxml plugin keeps its LogXML (record_testsuite_property's
# own mechanism); pytest exports no public name for it.
from . import options
from .backends.adapter import AdapterError
from .backends.base import Generation
from .backends.engine import EngineStartError
from .collect import (
    EVALUATION_MARKER,
    KIND_MARKERS,
    SMOKE_MARKER,
    TaskItem,
    split_node_args,
    task_file_nodeid,
)
from .core import Evaluation, SharedGenerationError, TaskResult
from .report.gate import BaselineError
from .session import StructevalSession, TimedCheck, VerdictLine, node_args_key
from .sweep import Sweep
from .tasks import FORMATS, InputError

pytest_addoption = options.pytest_addoption

session_key = pytest.StashKey["StructevalSession"]()
_requested_key = pytest.StashKey[tuple[options.Options, Evaluation, Sweep | None]]()


# -- early validation -----------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Bad input stops the session here: before collection, tests and any engine."""
    if config.option.help or config.option.version:
        return
    opts = options.read_options(config)
    if not opts.requested:
        return
    try:
        sweep = Sweep(opts.runs) if opts.runs else None
        evaluation = sweep.primary if sweep is not None else Evaluation(opts.settings)
    except (InputError, BaselineError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_requested_key] = (opts, evaluation, sweep)
    # A pasted-back id of a task file that pytest's collection does not reach: taken out of
    # pytest's arguments here, selected in pytest_collection_modifyitems.
    config.args, config.stash[node_args_key] = split_node_args(
        config.args,
        file_nodeid=task_file_nodeid(opts.settings.tasks, config.rootpath),
        invocation_dir=config.invocation_params.dir,
    )


def pytest_configure(config: pytest.Config) -> None:
    for name in FORMATS:
        config.addinivalue_line(
            "markers", f"{name}: StructEval-T task whose output is {name.upper()}"
        )
    for name, what in KIND_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: StructEval-T task: {what}")
    config.addinivalue_line("markers", "preflight: environment check that runs before the tasks")
    config.addinivalue_line(
        "markers", f"{EVALUATION_MARKER}: every StructEval-T task and preflight check"
    )
    config.addinivalue_line(
        "markers", f"{SMOKE_MARKER}: the first task of each task kind (19 with StructEval-T)"
    )
    requested = config.stash.get(_requested_key, None)
    if requested is None:
        return
    opts, evaluation, sweep = requested
    if config.get_verbosity() < 1:
        # vLLM's INFO lines (hundreds per run) only with -v; warnings and errors always; a
        # level the user set wins. Read by vLLM when it is imported, which is later.
        if "VLLM_LOGGING_LEVEL" not in os.environ:
            os.environ["VLLM_LOGGING_LEVEL"] = "WARNING"
            config.add_cleanup(lambda: os.environ.pop("VLLM_LOGGING_LEVEL", None))
    plugin = StructevalSession(config, opts, evaluation, sweep)
    config.stash[session_key] = plugin
    config.pluginmanager.register(plugin, "structeval-session")
    if plugin.is_controller:
        config.pluginmanager.register(plugin.clock, "structeval-phases")
        # Registered after the phases: among trylast hooks the later one runs last, so the
        # verdict is the last line of the plugins' summaries.
        config.pluginmanager.register(VerdictLine(plugin), "structeval-verdict")


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(session_key, None)
    if plugin is not None:
        plugin.evaluation.close()
        if plugin.sweep is not None:
            plugin.sweep.close()
        config.pluginmanager.unregister(plugin)
        if config.pluginmanager.is_registered(plugin.clock):
            config.pluginmanager.unregister(plugin.clock)
        verdict_line = config.pluginmanager.get_plugin("structeval-verdict")
        if verdict_line is not None:
            config.pluginmanager.unregister(verdict_line)
        del config.stash[session_key]


# -- fixtures -------------------------------------------------------------------------------


def _session(request: pytest.FixtureRequest) -> StructevalSession:
    plugin = request.config.stash.get(session_key, None)
    if plugin is None:
        raise pytest.UsageError(
            "pytest-structeval is not configured: pass --model, --tasks or --generations"
        )
    return plugin


@pytest.fixture(scope="session")
def structeval_generations(request: pytest.FixtureRequest) -> dict[str, Generation]:
    """All selected tasks' generations, produced in one batch the first time a task needs one.

    The preflight gate comes first: if a check failed, every task is skipped with its name and
    no engine starts."""
    plugin = _session(request)
    failed = plugin.preflight_failures()
    if failed:
        first = plugin.check_result(failed[0])
        more = f" (and {', '.join(failed[1:])})" if len(failed) > 1 else ""
        reason = f"preflight failed: {failed[0]}: {first.detail}{more}; no task ran"
        plugin.block(reason)
        pytest.skip(f"preflight failed: {', '.join(failed)}")
    try:
        return plugin.generations()
    except (EngineStartError, AdapterError, SharedGenerationError) as exc:
        # The first task shows the failure; the others point to it (structeval_result).
        plugin.engine_failure = str(exc)
        return {}


@pytest.fixture
def structeval_result(
    request: pytest.FixtureRequest, structeval_generations: dict[str, Generation]
) -> TaskResult:
    """The scored, judged and snapshotted result of this item's task."""
    item = request.node
    if not isinstance(item, TaskItem):
        raise pytest.UsageError("structeval_result is only available to StructEval-T task items")
    plugin = _session(request)
    if plugin.engine_failure is not None:
        shown_on = plugin.engine_failure_shown_on
        if shown_on is None or shown_on == item.nodeid:
            plugin.engine_failure_shown_on = item.nodeid
            pytest.fail(plugin.engine_failure, pytrace=False)
        pytest.skip(f"no generation: the engine did not start (the error is on {shown_on})")
    return plugin.result(item, request)


@pytest.fixture
def structeval_check_result(request: pytest.FixtureRequest) -> TimedCheck:
    """The result of this item's preflight check (each check runs once per process)."""
    return _session(request).check_result(request.node.check)
