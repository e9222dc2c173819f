"""The pytest layer: options, collection, fixtures and hooks, calling into the pipeline.

One ``StructevalSession`` object per pytest session lives in ``config.stash``; its methods are
the hooks. The evaluation suite (tests/test_structeval.py) holds two test functions that this
plugin parametrizes: ``test_preflight`` over the environment checks and ``test_task`` over the
selected tasks. Generation happens once, lazily, in a session fixture, for exactly the tasks
left after ``-k``/``-m``/``--lf``; each test only scores its own output.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from . import options as _options
from .backends.adapter import AdapterError
from .backends.base import Backend, Generation
from .backends.engine import EngineStartError
from .backends.replay import ReplayBackend
from .coordination import Worker, generate_shared, pin_worker_to_gpu, shard_count, visible_gpus
from .files import dump_json, write_atomic
from .report.report import Report
from .scoring.score import TaskScore, score_task
from .tasks import FORMATS, InputError, Task, TaskSet, load_generations

pytest_addoption = _options.pytest_addoption

KIND_MARKERS = {"generation": "Text to a format", "conversion": "one format to another"}
TASK_ARG = "structeval_task"
CHECK_ARG = "structeval_check"
EXCHANGE_DIR = ".exchange"


# -- early validation -----------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Bad input stops the session here: before collection, tests and any engine."""
    if config.option.help or config.option.version:
        return
    settings = _options.Settings.from_config(config)
    if not settings.tasks_explicit and not settings.tasks_path.exists():
        return  # installed without the bundled set and no --tasks: nothing to evaluate
    try:
        taskset = TaskSet.load(settings.tasks_path)
        generations = (
            load_generations(settings.generations_path, taskset, selected=())
            if settings.generations_path
            else None
        )
        if settings.baseline_path is not None:
            from .report.gate import load_baseline

            baseline = load_baseline(settings.baseline_path)
        else:
            baseline = None
    except (InputError, ValueError) as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[_validated_key] = (settings, taskset, generations, baseline)


_validated_key = pytest.StashKey[tuple]()
session_key = pytest.StashKey["StructevalSession"]()


def pytest_configure(config: pytest.Config) -> None:
    for name in FORMATS:
        config.addinivalue_line(
            "markers", f"{name}: StructEval-T task whose output is {name.upper()}"
        )
    for name, what in KIND_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: StructEval-T task: {what}")
    config.addinivalue_line("markers", "preflight: environment check that runs before the tasks")
    validated = config.stash.get(_validated_key, None)
    if validated is None:
        return
    workerinput = getattr(config, "workerinput", None)
    worker = Worker.from_workerinput(workerinput)
    if not validated[0].replay:
        # Before anything imports torch or vLLM: spawn start method, no usage stats, own GPU.
        from .backends.platform import prepare_environment

        prepare_environment()
        if worker.count > 1:
            pin_worker_to_gpu(worker, visible_gpus())
    plugin = StructevalSession(config, *validated, worker=worker)
    config.stash[session_key] = plugin
    config.pluginmanager.register(plugin, "structeval-session")


def pytest_unconfigure(config: pytest.Config) -> None:
    plugin = config.stash.get(session_key, None)
    if plugin is not None:
        plugin.close()
        config.pluginmanager.unregister(plugin)
        del config.stash[session_key]


# -- parametrization ------------------------------------------------------------------------


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    plugin = metafunc.config.stash.get(session_key, None)
    if TASK_ARG in metafunc.fixturenames:
        if plugin is None:
            raise pytest.UsageError("no task file: pass --tasks=PATH (the bundled set is missing)")
        metafunc.parametrize(
            TASK_ARG,
            [
                pytest.param(task, id=f"{task.task_id}-{task.task_name}", marks=task_marks(task))
                for task in plugin.taskset
            ],
        )
    if CHECK_ARG in metafunc.fixturenames:
        checks = plugin.checks() if plugin is not None else []
        metafunc.parametrize(
            CHECK_ARG,
            [pytest.param(check, id=check.name, marks=pytest.mark.preflight) for check in checks],
        )


def task_marks(task: Task) -> list[pytest.MarkDecorator]:
    return [getattr(pytest.mark, task.fmt), getattr(pytest.mark, task.kind)]


def keyword_name(task_name: str) -> str:
    """``CSV to JSON`` -> ``CSV_to_JSON``: a form pytest's ``-k`` grammar accepts."""
    return task_name.replace(" ", "_")


# -- per-test values ------------------------------------------------------------------------


@dataclass
class TaskOutcome:
    """What a task test checks, and the failure text it shows when the check fails."""

    task: Task
    result: TaskScore
    generation: Generation
    verdict: str = "pass"  # pass | fail | xfail
    message: str = ""
    snapshot_state: str | None = None

    def verify(self) -> None:
        if self.verdict == "xfail":
            pytest.xfail(self.message)
        if self.verdict == "fail":
            pytest.fail(self.message, pytrace=False)


@dataclass
class CheckOutcome:
    name: str
    status: str
    detail: str
    fix: str

    def verify(self) -> None:
        if self.status == "skip":
            pytest.skip(self.detail)
        if self.status == "fail":
            pytest.fail(
                f"{self.detail}\nfix: {self.fix}" if self.fix else self.detail, pytrace=False
            )


# -- the session object ---------------------------------------------------------------------


@dataclass(eq=False)  # a registered plugin: pluggy hashes it, by identity
class StructevalSession:
    config: pytest.Config
    settings: _options.Settings
    taskset: TaskSet
    replay_generations: dict[str, str] | None
    baseline: dict[str, Any] | None
    worker: Worker = field(default_factory=lambda: Worker(0, 1))
    selected: list[Task] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    worker_meta: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    _backend: Backend | None = None
    _checks: list[Any] | None = None
    _check_results: dict[str, Any] = field(default_factory=dict)
    _generations: dict[str, Generation] | None = None
    _report: Report | None = None
    _baseline_scores: dict[str, float] | None = None
    _suite_dir: Path | None = None

    @property
    def is_controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    # collection

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Runs before pytest's own -k/-m deselection: lets ``-k "CSV to JSON"`` work (pytest's
        -k grammar has no spaces) and puts the preflight checks first."""
        keyword = self.config.option.keyword
        if keyword:
            for name in sorted({t.task_name for t in self.taskset}, key=len, reverse=True):
                keyword = re.sub(re.escape(name), keyword_name(name), keyword, flags=re.IGNORECASE)
            self.config.option.keyword = keyword
        for item in items:
            task = _param(item, TASK_ARG)
            if task is not None:
                item.extra_keyword_matches.add(keyword_name(task.task_name))
        items.sort(key=lambda item: _param(item, CHECK_ARG) is None)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The final selection is known: remember it for the one batched generation."""
        chosen = {task.task_id for item in session.items if (task := _param(item, TASK_ARG))}
        self.selected = [task for task in self.taskset if task.task_id in chosen]
        if self.replay_generations is not None:
            missing = [t.task_id for t in self.selected if t.task_id not in self.replay_generations]
            if missing:
                shown = ", ".join(missing[:3]) + (" …" if len(missing) > 3 else "")
                raise pytest.UsageError(
                    f"{self.settings.generations_path}: no generation for {len(missing)} "
                    f"selected task(s): {shown}"
                )

    # preflight

    def checks(self) -> list[Any]:
        if self._checks is None:
            from .preflight.checks import PreflightConfig, preflight_checks

            s = self.settings
            self._checks = preflight_checks(
                PreflightConfig(
                    model=s.model,
                    adapter=s.adapter,
                    tasks_path=str(s.tasks_path),
                    out_dir=str(s.out_dir),
                    gpu_memory_utilization=s.gpu_memory_utilization,
                    dtype=s.dtype,
                    replay=s.replay,
                )
            )
        return self._checks

    def check_outcome(self, check: Any) -> CheckOutcome:
        if check.name not in self._check_results:
            result = check.run()
            self._check_results[check.name] = CheckOutcome(
                check.name, result.status, result.detail, result.fix
            )
        return self._check_results[check.name]

    def preflight_failures(self) -> list[str]:
        return [c.name for c in self.checks() if self.check_outcome(c).status == "fail"]

    # generation

    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = self._make_backend()
        return self._backend

    def _make_backend(self) -> Backend:
        s = self.settings
        if self.replay_generations is not None:
            return ReplayBackend(self.replay_generations, source=str(s.generations_path))
        from .backends.vllm_offline import VllmBackend, VllmConfig
        from .cache import GenerationCache
        from .models import resolve_model

        if s.no_cache:
            cache = GenerationCache(self.exchange() / "cache") if self.worker.count > 1 else None
        else:
            cache = GenerationCache(s.cache_dir / "generations", refresh=s.refresh)
        config = VllmConfig(
            model=resolve_model(s.model, cache_root=s.cache_dir),
            model_name=s.model,
            adapter=s.adapter,
            max_tokens=s.max_tokens,
            temperature=s.temperature,
            seed=s.seed,
            max_model_len=s.max_model_len,
            gpu_memory_utilization=s.gpu_memory_utilization,
            dtype=s.dtype,
            vllm_args=s.vllm_args,
            structured_outputs=s.structured_outputs,
            trust_remote_code=s.trust_remote_code,
        )
        return VllmBackend(config, cache=cache)

    def exchange(self) -> Path:
        """A directory the xdist workers of this run share; the controller removes the parent
        at the end of the session."""
        workerinput = getattr(self.config, "workerinput", None)
        run_id = workerinput["testrunuid"] if workerinput else str(os.getpid())
        return self.settings.out_dir / EXCHANGE_DIR / run_id

    def generations(self) -> dict[str, Generation]:
        if self._generations is None:
            # Generation runs inside a fixture, where pytest captures output: let the phase
            # lines and vLLM's progress bar reach the terminal while it runs.
            capman = self.config.pluginmanager.get_plugin("capturemanager")
            live = self.is_controller and capman is not None and not self.settings.replay
            with capman.global_and_fixture_disabled() if live else contextlib.nullcontext():
                self._generations = self._generate_selection()
        return self._generations

    def _generate_selection(self) -> dict[str, Generation]:
        backend = self.backend()
        started = time.perf_counter()
        if self.worker.count > 1 and not self.settings.replay:
            generations = generate_shared(
                backend,
                self.selected,
                exchange=self.exchange(),
                worker=self.worker,
                shards=shard_count(self.worker, visible_gpus()),
                on_phase=self.phase,
            )
        else:
            generations = backend.generate(self.selected, on_phase=self.phase)
        self.timings["generation"] = time.perf_counter() - started
        if not self.settings.replay:
            self.phase(
                f"{len(generations)} generations ready in {self.timings['generation']:.1f} s "
                f"({backend.stats.cache_hits} from cache, {backend.stats.engine_builds} engine builds)"
            )
        return generations

    def phase(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None and self.is_controller:
            reporter.write_line(f"structeval: {line}")

    # per task

    def outcome(
        self, task: Task, generation: Generation, request: pytest.FixtureRequest
    ) -> TaskOutcome:
        started = time.perf_counter()
        result = score_task(
            task,
            generation.text,
            mode=self.settings.scoring_mode,  # type: ignore[arg-type]
            finish_reason=generation.finish_reason,
        )
        self.timings["scoring"] = self.timings.get("scoring", 0.0) + time.perf_counter() - started
        outcome = TaskOutcome(task, result, generation)
        self._judge(outcome)
        self._snapshot(outcome, request)
        record = result.to_dict()
        record["generation"] = generation.text
        record["finish_reason"] = generation.finish_reason
        record["from_cache"] = generation.from_cache
        record["snapshot"] = outcome.snapshot_state
        request.node.stash[record_key] = record
        request.node.user_properties.extend(
            [
                ("structeval_score", result.score),
                ("structeval_key_score", result.key_score),
                ("structeval_syntax_ok", result.syntax_ok),
            ]
        )
        return outcome

    def _judge(self, outcome: TaskOutcome) -> None:
        score = outcome.result.score
        if self.baseline is None:
            if score < 1.0:
                outcome.verdict, outcome.message = "fail", outcome.result.explain()
            return
        from .report.gate import baseline_scores, task_verdict

        if self._baseline_scores is None:
            self._baseline_scores = baseline_scores(self.baseline)
        before = self._baseline_scores.get(outcome.task.task_id)
        verdict = task_verdict(before, score, strict_regressions=self.settings.strict_regressions)
        outcome.verdict = verdict.outcome
        explanation = outcome.result.explain() if score < 1.0 else ""
        outcome.message = "\n".join(filter(None, [verdict.message, explanation]))

    def snapshot_slug(self) -> str:
        """The snapshot folder's name: the model (+ adapter), or the replayed file."""
        from .report.snapshots import snapshot_slug

        s = self.settings
        return snapshot_slug(
            None if s.replay else s.model,
            s.adapter,
            str(s.generations_path) if s.generations_path else None,
        )

    def _snapshot(self, outcome: TaskOutcome, request: pytest.FixtureRequest) -> None:
        from .report.snapshots import check_snapshot
        from .scoring.extract import extract_code

        slug = self.snapshot_slug()
        snapshot = request.getfixturevalue("snapshot")
        try:
            outcome.snapshot_state = check_snapshot(
                snapshot,
                task_id=outcome.task.task_id,
                fmt=outcome.task.fmt,
                slug=slug,
                content=extract_code(
                    outcome.generation.text, mode=self.settings.scoring_mode, unescape=False
                ).code,
            )
        except AssertionError as exc:
            # A changed output fails the task whatever its score: the same model should give
            # the same output until someone accepts the change with --snapshot-update.
            outcome.snapshot_state = "changed"
            outcome.verdict = "fail"
            outcome.message = "\n".join(filter(None, [str(exc), outcome.message]))

    # reporting hooks

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        record = item.stash.get(record_key, None)
        if record is not None and report.when == "call":
            # Plain JSON-safe data on the report travels from xdist workers to the controller.
            report.structeval = record  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "structeval", None)
        if record is None or report.when != "call":
            return
        status = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        self.records[record["task_id"]] = {**record, "status": status}
        self._suite_dir = (self.config.rootpath / report.location[0]).parent

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if not self.is_controller:
            session.config.workeroutput["structeval"] = self.local_meta()  # type: ignore[attr-defined]
            return
        shutil.rmtree(self.settings.out_dir / EXCHANGE_DIR, ignore_errors=True)
        if not self.records:
            return
        self._report = self.build_report()
        self.write_outputs(self._report)
        comparison = self._report.comparison
        if comparison is not None and comparison.get("dropped") and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        meta = getattr(node, "workeroutput", {}).get("structeval")
        if meta is not None:
            self.worker_meta.append(meta)

    def local_meta(self) -> dict[str, Any]:
        if self._backend is None:
            return {"engine_builds": 0, "timings": dict(self.timings)}
        backend = self._backend
        return {
            **backend.meta(),
            "engine_builds": backend.stats.engine_builds,
            "generated": backend.stats.generated,
            "cache_hits": backend.stats.cache_hits,
            "timings": {**backend.stats.timings, **self.timings},
        }

    def build_report(self) -> Report:
        import platform
        from importlib import metadata

        parts = self.worker_meta or [self.local_meta()]
        meta: dict[str, Any] = {}
        for part in parts:
            for key, value in part.items():
                meta.setdefault(key, value)
        meta["engine_builds"] = sum(p.get("engine_builds", 0) for p in parts)
        meta["generated"] = sum(p.get("generated", 0) for p in parts)
        meta["cache_hits"] = sum(p.get("cache_hits", 0) for p in parts)
        meta.setdefault("backend", "replay" if self.settings.replay else "vllm")
        meta.setdefault("model", None if self.settings.replay else self.settings.model)
        versions = dict(meta.get("versions") or {})
        versions.setdefault("python", platform.python_version())
        versions.setdefault("pytest", pytest.__version__)
        versions.setdefault("pytest-structeval", metadata.version("pytest-structeval"))
        meta["versions"] = versions
        meta["tasks_file"] = str(self.settings.tasks_path)
        meta["scoring_mode"] = self.settings.scoring_mode
        meta["workers"] = max(1, len(self.worker_meta))
        report = Report.build(
            self.records, self.taskset, meta=meta, weights=self.settings.format_weights
        )
        snapshots: dict[str, int] = {}
        for record in report.tasks:
            if record.get("snapshot"):
                snapshots[record["snapshot"]] = snapshots.get(record["snapshot"], 0) + 1
        report.summary["snapshots"] = snapshots
        if self.baseline is not None:
            report = report.with_comparison(self.compare_with_baseline(report))
        return report

    def compare_with_baseline(self, report: Report) -> dict[str, Any]:
        """Compare like with like: when -k/-m/--lf ran a subset of the task file, the baseline's
        overall is recomputed over the same tasks, the same way."""
        from .report.aggregate import summarize
        from .report.gate import compare

        assert self.baseline is not None
        baseline = self.baseline
        baseline_overall = None
        if len(self.selected) < len(self.taskset):
            chosen = {task.task_id for task in self.selected}
            kept = [t for t in baseline.get("tasks", []) if t["task_id"] in chosen]
            baseline = {**baseline, "tasks": kept}
            scored = [TaskScore.from_dict(t) for t in kept if t.get("score") is not None]
            if scored:
                baseline_overall = summarize(scored, weights=self.settings.format_weights)[
                    "overall"
                ]
        comparison = compare(
            {r["task_id"]: r["score"] for r in report.tasks},
            baseline,
            current_overall=report.summary["overall"],
            max_drop=self.settings.max_drop,
            baseline_overall=baseline_overall,
        )
        return comparison.to_dict()

    def write_outputs(self, report: Report) -> None:
        from .report.html import render_html

        out = self.settings.out_dir
        write_atomic(out / "inference.json", dump_json(report.inference()))
        write_atomic(out / "report.json", dump_json(report.to_dict()))
        write_atomic(out / "report.html", render_html(report.to_dict()))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        report = self._report
        if report is None:
            return
        terminalreporter.write_sep("=", "structeval summary")
        for line in report.lines():
            terminalreporter.write_line(line)
        if report.comparison is not None:
            from .report.gate import Comparison

            terminalreporter.write_line("")
            for line in Comparison.from_dict(report.comparison).lines():
                terminalreporter.write_line(line)
        counts = report.summary.get("snapshots") or {}
        if counts.get("new"):
            terminalreporter.write_line(f"snapshots: {counts['new']} new, written")
        unused = self.unused_snapshots()
        if unused:
            names = ", ".join(p.name for p in unused[:5]) + (" …" if len(unused) > 5 else "")
            terminalreporter.write_line(
                f"snapshots: {len(unused)} for tasks no longer in {self.settings.tasks_path.name} "
                f"(delete them if they are stale): {names}"
            )
        out = self.settings.out_dir
        terminalreporter.write_line(
            f"written: {out / 'report.json'}, {out / 'inference.json'}, {out / 'report.html'}"
        )

    def unused_snapshots(self) -> list[Path]:
        """Snapshot files of this model whose task is gone from the task file (a -k/-m subset
        leaves the others alone: they are still in the task file)."""
        from .report.snapshots import SNAPSHOT_DIRNAME, unused_snapshots

        if self._suite_dir is None:
            return []
        directory = self._suite_dir / SNAPSHOT_DIRNAME / self.snapshot_slug()
        return unused_snapshots(directory, [task.task_id for task in self.taskset])

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


record_key = pytest.StashKey[dict]()


def _param(item: pytest.Item, name: str) -> Any:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(name) if callspec is not None else None


# -- fixtures -------------------------------------------------------------------------------


def _session(request: pytest.FixtureRequest) -> StructevalSession:
    plugin = request.config.stash.get(session_key, None)
    if plugin is None:
        raise pytest.UsageError("pytest-structeval is not configured: pass --tasks=PATH")
    return plugin


@pytest.fixture(scope="session")
def structeval_generations(request: pytest.FixtureRequest) -> dict[str, Generation]:
    """All selected tasks' generations, produced in one batch the first time a task needs one.

    The preflight gate comes first: if a check failed, every task test is skipped with its
    name and no engine starts."""
    plugin = _session(request)
    failed = plugin.preflight_failures()
    if failed:
        pytest.skip(f"preflight failed: {', '.join(failed)}")
    try:
        return plugin.generations()
    except (EngineStartError, AdapterError) as exc:
        # One clear message (every fallback rung and its cause), not an engine traceback in
        # every task test.
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def structeval_outcome(
    request: pytest.FixtureRequest,
    structeval_task: Task,
    structeval_generations: dict[str, Generation],
) -> TaskOutcome:
    """The scored output of this test's task, judged (and snapshotted) but not yet asserted."""
    generation = structeval_generations[structeval_task.task_id]
    return _session(request).outcome(structeval_task, generation, request)


@pytest.fixture
def structeval_check_outcome(request: pytest.FixtureRequest, structeval_check: Any) -> CheckOutcome:
    """The result of one preflight check (each check runs once per process)."""
    return _session(request).check_outcome(structeval_check)
