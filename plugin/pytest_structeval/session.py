"""The session object of the pytest layer: one ``StructevalSession`` per pytest session.

``plugin.py`` builds it in ``pytest_configure`` when the command line asks for an evaluation,
keeps it in ``config.stash`` and registers it; its methods are the hooks of one evaluation:
collection of the task file, the preflight gate, one generation for the final selection (lazily,
in a session fixture), each item's score and snapshot, and at the end the reports, the verdict
line and the JUnit properties. ``VerdictLine`` prints the verdict last.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import sys
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# The key under which pytest's junitxml plugin keeps its LogXML (record_testsuite_property's
# own mechanism); pytest exports no public name for it.
from _pytest.junitxml import xml_key as junit_xml_key

from . import options
from .backends.base import Generation
from .backends.engine import EngineArgumentError, import_engine_modules
from .background import Background
from .collect import (
    TaskFile,
    TaskItem,
    collect_items,
    keyword_name,
    node_selection,
    task_file_nodeid,
)
from .core import Evaluation, Finished, SharedGeneration, TaskResult
from .interrupt import SigintGuard
from .models import builtin_path
from .phases import PhaseClock
from .preflight import CHECK_NAMES, REPLAY_NO_ENGINE, REPLAY_NO_MODEL, preflight_checks
from .report.gate import GateVerdict
from .report.report import TaskRecord
from .report.snapshots import (
    SnapshotMismatch,
    check_snapshot,
    snapshot_slug,
    unused_snapshots,
)
from .settings import Settings
from .sweep import Sweep, compare, write_comparison
from .tasks import InputError, Task

EXCHANGE_DIR = ".exchange"
# Node ids of the task file given as arguments that pytest could not resolve to a path
# (plugin.py takes them out of the arguments; collection selects them).
node_args_key = pytest.StashKey[list[str]]()
result_key = pytest.StashKey[TaskResult]()


# -- the session object ---------------------------------------------------------------------


@dataclass
class TimedCheck:
    """A preflight check's result in this process, and what it took."""

    status: str
    detail: str
    message: str
    seconds: float


@dataclass(eq=False)  # a registered plugin: pluggy hashes it, by identity
class StructevalSession:
    config: pytest.Config
    opts: options.Options
    evaluation: Evaluation
    sweep: Sweep | None = None  # several runs (--adapter or --model given more than once)
    selected: list[Task] = field(default_factory=list)
    selected_by_run: dict[str, list[Task]] = field(default_factory=dict)
    run_records: dict[str, dict[str, TaskRecord]] = field(default_factory=dict)
    run_finished: dict[str, Finished] = field(default_factory=dict)
    comparison: Any = None  # the sweep's report.runs.RunsComparison, once written
    _run_generations: dict[str, dict[str, Generation]] = field(default_factory=dict)
    records: dict[str, TaskRecord] = field(default_factory=dict)
    worker_meta: list[dict[str, Any]] = field(default_factory=list)
    finished: Finished | None = None
    _engine_not_needed: str | None = None
    _checks: dict[str, Any] | None = None
    _check_results: dict[str, TimedCheck] = field(default_factory=dict)
    _generations: dict[str, Generation] | None = None
    clock: PhaseClock = field(init=False)
    blocked: str | None = None  # why the preflight stopped the run, once it did
    engine_failure: str | None = None  # why the engine did not start, once it did not
    engine_failure_shown_on: str | None = None  # the one task that shows it
    _vllm_import: Background | None = None  # vLLM's import, beside the preflight
    _release: Background | None = None  # the engine's release, once generation is done
    _pending_phases: list[str] = field(default_factory=list)  # a worker's, for the controller
    verdict: GateVerdict | None = None  # the run's, once the session finished
    folded_failures: int = 0  # failing tasks shown as their short-summary line only
    # vLLM's progress bar only on a terminal, and not under -q: in a log it is hundreds of
    # carriage-return frames. Read when the session is made, in pytest_configure, where
    # sys.stdout is still the real one (pytest captures it around collection and the tests).
    progress: bool = field(init=False)

    @property
    def one_line_failures(self) -> bool:
        """A failing task is one line (pytest's short summary, its reason first) unless the user
        asked for details: -v, or a --tb style of their own (pytest's default is "auto")."""
        return self.config.option.tbstyle == "auto" and self.config.get_verbosity() < 1

    def __post_init__(self) -> None:
        self.clock = PhaseClock(self._evaluation_phases)
        if self.one_line_failures and hasattr(self.config.option, "force_short_summary"):
            # On CI (CI=true) pytest prints a failure's whole message in the short summary;
            # its own --force-short-summary keeps it to the first line, the task's reason.
            self.config.option.force_short_summary = True
        self.progress = sys.stdout.isatty() and self.config.get_verbosity() >= 0

    def _evaluation_phases(self) -> dict[str, float]:
        """Engine start, generation and scoring as this process's evaluation timed them."""
        timings = self.evaluation.timed
        start = timings.get("engine_start", 0.0) + timings.get("server_start", 0.0)
        phases: dict[str, float] = {}
        if start:
            phases["engine start"] = start
        if "generation" in timings:
            phases["generation (cache lookup included)"] = timings["generation"] - start
        if "scoring" in timings:
            phases["scoring"] = timings["scoring"]
        return phases

    @property
    def settings(self) -> Settings:
        return self.opts.settings

    @property
    def snapshot_dir(self) -> Path | None:
        """None with --no-snapshots."""
        return self.settings.output.snapshot_dir

    @property
    def is_controller(self) -> bool:
        return not hasattr(self.config, "workerinput")

    # collection

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> TaskFile | None:
        if file_path == self.settings.tasks:
            return self._task_file(parent, path=file_path)
        return None

    def _task_file(self, parent: pytest.Collector, **kwargs: Any) -> TaskFile:
        runs = tuple(run.name for run in self.sweep.runs) if self.sweep is not None else ()
        return TaskFile.from_parent(
            parent, taskset=self.evaluation.tasks, checks=CHECK_NAMES, runs=runs, **kwargs
        )

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(
        self, session: pytest.Session, items: list[pytest.Item]
    ) -> None:
        """Runs before pytest's own -k/-m/--lf deselection: adds the task file's items when
        collection did not reach it, lets ``-k "CSV to JSON"`` work (pytest's -k grammar has
        no spaces) and puts the preflight checks first."""
        if not any(isinstance(item, TaskItem) for item in items):
            path = self.settings.tasks
            nodeid = task_file_nodeid(path, self.config.rootpath)
            items.extend(collect_items(self._task_file(session, path=path, nodeid=nodeid)))
        node_args = self.config.stash.get(node_args_key, [])
        if node_args:
            items[:], deselected = node_selection(items, node_args)
            if deselected:
                self.config.hook.pytest_deselected(items=deselected)
        keyword = self.config.option.keyword
        if keyword:
            names = sorted({t.task_name for t in self.evaluation.tasks}, key=len, reverse=True)
            for name in names:
                keyword = re.sub(re.escape(name), keyword_name(name), keyword, flags=re.IGNORECASE)
            self.config.option.keyword = keyword
        items.sort(key=lambda item: item.get_closest_marker("preflight") is None)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """The final selection is known: check it can be served, and find out, before any
        check runs, whether it needs an engine at all."""
        self.clock.lap("collection")
        items = [item for item in session.items if isinstance(item, TaskItem)]
        chosen = {item.task.task_id for item in items}
        self.selected = [task for task in self.evaluation.tasks if task.task_id in chosen]
        if self.sweep is not None:
            pairs = {(item.run, item.task.task_id) for item in items}
            self.selected_by_run = {
                run.name: [t for t in self.evaluation.tasks if (run.name, t.task_id) in pairs]
                for run in self.sweep.runs
            }
        try:
            self.evaluation.check_selection(self.selected)
        except InputError as exc:
            raise pytest.UsageError(str(exc)) from None
        if not self.settings.local_engine or not self.selected or self.config.option.collectonly:
            return
        if self._all_cached():
            self._engine_not_needed = f"not needed: all {len(self.selected)} generations are cached"
            return
        # Importing vLLM takes seconds (15 on a GPU machine): start it now, beside the
        # preflight, and check the engine arguments once it is done, before the engine starts.
        self._vllm_import = Background(import_engine_modules, "structeval-import-vllm")

    def check_engine_args(self) -> None:
        """The user's engine arguments against the installed vLLM, once its import is done; a
        bad one stops the run as a usage error (exit 4) before any engine starts. Nothing to
        check (and nothing imported) when every generation is cached."""
        if self._engine_not_needed is not None:
            return
        if self._vllm_import is not None:
            self.clock.add("vLLM import (the part not overlapped)", self._vllm_import.wait())
        try:
            self.evaluation.validate_engine_args()
        except EngineArgumentError as exc:
            # Raised inside a fixture, a UsageError would become one test's error: say it as
            # pytest says usage errors, and end the session with their exit status.
            sys.stderr.write(f"ERROR: {exc}\n")
            pytest.exit(
                "bad --vllm-arg (the ERROR line above)", returncode=pytest.ExitCode.USAGE_ERROR
            )

    def _all_cached(self) -> bool:
        """Whether the cache holds every selected generation, found out without importing
        vLLM or torch. Anything that stops the lookup (a built-in model not built yet, an
        adapter vLLM would refuse, an unreadable model) means an engine may be needed: the
        preflight checks and the engine start then report the cause."""
        built = builtin_path(self.settings.engine.model or "", root=self.settings.cache.root)
        if built is not None and not (built / "config.json").is_file():
            return False
        try:
            if self.sweep is not None:
                self._backend()
                return not any(
                    self.sweep.evaluations[name].backend.lookup(tasks)[1]
                    for name, tasks in self.selected_by_run.items()
                )
            _, misses = self._backend().lookup(self.selected)
        except Exception:
            return False
        return not misses

    def _cache_dir(self) -> Path | None:
        if self.worker_count() > 1 and not self.settings.cache.enabled:
            # Workers must share what one of them generates even with --no-cache.
            return self.exchange() / "cache"
        return None

    def _backend(self):
        if self.sweep is not None:
            return self.sweep.backends(cache_dir=self._cache_dir())[0]
        return self.evaluation.backend_for(cache_dir=self._cache_dir(), progress=self.progress)

    def worker_count(self) -> int:
        workerinput = getattr(self.config, "workerinput", None)
        return int(workerinput["workercount"]) if workerinput else 1

    def exchange(self) -> Path:
        """A directory the xdist workers of this run share; the controller removes the parent
        at the end of the session."""
        workerinput = getattr(self.config, "workerinput", None)
        run_id = workerinput["testrunuid"] if workerinput else "local"
        return self.settings.output.out_dir / EXCHANGE_DIR / run_id

    # preflight

    def check_result(self, name: str) -> TimedCheck:
        if self._checks is None:
            s = self.settings
            engine, model = self._engine_not_needed, None
            if s.replay:
                engine, model = REPLAY_NO_ENGINE, REPLAY_NO_MODEL
            elif s.serving.endpoint is not None:
                engine = f"served by {s.serving.endpoint}: no local engine"
                model = f"served by {s.serving.endpoint}: the server loads the model"
            checks = preflight_checks(s, engine_not_needed=engine, model_not_needed=model)
            self._checks = {check.name: check for check in checks}
        if name not in self._check_results:
            started = time.perf_counter()
            result = self._checks[name].run()
            self._check_results[name] = TimedCheck(
                result.status, result.detail, result.message, time.perf_counter() - started
            )
            self.clock.add("preflight", self._check_results[name].seconds)
        return self._check_results[name]

    def preflight_failures(self) -> list[str]:
        return [name for name in CHECK_NAMES if self.check_result(name).status == "fail"]

    # generation

    def generations(self) -> dict[str, Generation]:
        if self._generations is None:
            # Generation runs inside a fixture, where pytest captures output: let the phase
            # lines and vLLM's progress bar reach the terminal while it runs.
            capman = self.config.pluginmanager.get_plugin("capturemanager")
            live = self.is_controller and capman is not None and not self.settings.replay
            with capman.global_and_fixture_disabled() if live else contextlib.nullcontext():
                seconds = sum(r.seconds for r in self._check_results.values())
                self.phase(f"preflight {len(self._check_results)} checks {seconds:.1f} s")
                if self.settings.local_engine:
                    self.check_engine_args()
                with SigintGuard() as guard:
                    try:
                        self._generations = self._generate()
                    except BaseException as exc:
                        if not (guard.interrupted or isinstance(exc, KeyboardInterrupt)):
                            raise
                        self.phase(self._interrupted())
                        # A fresh interrupt: vLLM's frames (an LLM whose repr asks the dead
                        # engine core) stay out of the traceback pytest renders.
                        raise KeyboardInterrupt from None
                if self.sweep is None and not self.settings.replay:
                    # Every generation is in: nothing needs the engine (or the session's server)
                    # again, and its release (seconds: vLLM's processes exit one after the
                    # other, 1.7 s on an H100, 3.3 s on two CPU cores) overlaps the scoring, the
                    # tasks and the reports instead of following them.
                    self._release = Background(self.evaluation.close, "structeval-release")
        return self._generations

    def _interrupted(self) -> str:
        """Tear the engine down after Ctrl-C (a second one exits at once: SigintGuard) and say
        what the cache kept: every generation that finished before the interrupt."""
        # The engine core got the same SIGINT and is stopping: one second, then it is killed.
        self.evaluation.close(grace=1.0)
        if not self.settings.cache.enabled:
            return (
                "interrupted during generation: the cache is off (--no-cache), so none of the "
                f"{len(self.selected)} generations is kept and no task was scored"
            )
        kept, missing = self._backend().lookup(self.selected)
        where = self.settings.cache.root
        return (
            f"interrupted during generation: {len(kept)} of {len(self.selected)} generations "
            f"finished before the interrupt and are kept in the cache ({where}); the other "
            f"{len(missing)} were not generated and no task was scored; a re-run generates "
            "only those"
        )

    def _generate(self) -> dict[str, Generation]:
        backend = self._backend()
        shared = SharedGeneration(self.exchange()) if self.worker_count() > 1 else None
        if self.sweep is not None:
            self._run_generations = self.sweep.generate(
                self.selected_by_run,
                on_phase=self.phase,
                shared=shared,
                cache_dir=self._cache_dir(),
            )
            backends = self.sweep.backends(cache_dir=self._cache_dir())
            self.phase(
                f"{sum(map(len, self._run_generations.values()))} generations for "
                f"{len(backends)} runs ready in {self.sweep.timings['generation']:.1f} s "
                f"({sum(b.stats.cache_hits for b in backends)} from cache, "
                f"{sum(b.stats.engine_builds for b in backends)} engine builds)"
            )
            return self._run_generations.get(self.sweep.runs[0].name, {})
        generations = self.evaluation.generate(self.selected, on_phase=self.phase, shared=shared)
        if not self.settings.replay:
            self.phase(
                f"{len(generations)} generations ready in "
                f"{self.evaluation.timings['generation']:.1f} s ({backend.stats.cache_hits} "
                f"from cache, {backend.stats.engine_builds} engine builds)"
            )
        return generations

    def phase(self, line: str) -> None:
        """A phase line on the terminal; an xdist worker's travel to the controller on its
        next test report (a worker has no terminal)."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if not self.is_controller:
            worker = self.config.workerinput["workerid"]  # type: ignore[attr-defined]
            self._pending_phases.append(f"[{worker}] {line}")
        elif reporter is not None:
            reporter.write_line(f"structeval: {line}")

    def block(self, reason: str) -> None:
        """The preflight stopped the run: say why once, on the terminal, and fail the run."""
        if self.blocked is None:
            self.blocked = reason
            capman = self.config.pluginmanager.get_plugin("capturemanager")
            with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
                self.phase(reason)

    # per task

    def result(self, item: TaskItem, request: pytest.FixtureRequest) -> TaskResult:
        """Score and judge the item's output, then compare it with its snapshot. A task whose
        generation failed for good (a server's answer that never came) is an error with its
        cause; the other tasks still score."""
        generations = self.generations()
        evaluation = self.evaluation
        if item.run is not None and self.sweep is not None:
            evaluation = self.sweep.evaluations[item.run]
            generations = self._run_generations.get(item.run, {})
        generation = generations.get(item.task.task_id)
        if generation is None:
            failure = evaluation.failures.get(item.task.task_id)
            pytest.fail(failure.message() if failure else "no generation", pytrace=False)
        result = evaluation.score(item.task, generation)
        result = self._snapshot(result, request, evaluation.settings)
        item.stash[result_key] = result
        item.user_properties.extend(
            [
                ("structeval_score", result.score.score),
                ("structeval_key_score", result.score.key_score),
                ("structeval_syntax_ok", result.score.syntax_ok),
            ]
        )
        return result

    def snapshot_slug(self, settings: Settings | None = None) -> str:
        """The snapshot folder's name: the model (+ adapter, + the settings that change its
        outputs), or the replayed file (its path relative to the rootdir when inside it, so
        that the name is the same on every checkout). ``settings``: a sweep's run's."""
        s = settings if settings is not None else self.settings
        if s.replay:
            assert s.generations is not None
            path = s.generations
            with contextlib.suppress(ValueError):
                path = path.relative_to(self.config.rootpath)
            return snapshot_slug(None, generations=path.as_posix())
        return snapshot_slug(s.engine.model, s.engine.adapter, variant=s.output_variant())

    def _snapshot(
        self, result: TaskResult, request: pytest.FixtureRequest, settings: Settings
    ) -> TaskResult:
        """Compare the output with its snapshot. A change is reported (the summary's count,
        the record's ``snapshot: changed`` and the diff in the test's report sections); it never changes the
        task's verdict, which comes from the score and the baseline only."""
        if self.snapshot_dir is None:  # --no-snapshots
            return result
        try:
            state = check_snapshot(
                request.getfixturevalue("snapshot"),
                root=self.snapshot_dir,
                task_id=result.task.task_id,
                fmt=result.task.fmt,
                slug=self.snapshot_slug(settings),
                # The document as the model wrote it (no unicode_escape step), from the
                # scorer's own extraction.
                content=result.score.document,
            )
        except SnapshotMismatch as exc:
            # The diff goes with the test's report (shown by -rA, and in JUnit's system-out);
            # a warning would fail the task under -W error.
            request.node.add_report_section("call", "structeval snapshot", str(exc))
            return result.with_snapshot("changed")
        return result.with_snapshot(state)

    # reporting hooks

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if self._pending_phases:
            report.structeval_phases = self._pending_phases  # type: ignore[attr-defined]
            self._pending_phases = []
        result = item.stash.get(result_key, None)
        if result is not None and report.when == "call":
            # Plain JSON-safe data on the report travels from xdist workers to the controller.
            report.structeval = result.record()  # type: ignore[attr-defined]
            if getattr(item, "run", None) is not None:
                report.structeval_run = item.run  # type: ignore[attr-defined]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.is_controller:
            for line in getattr(report, "structeval_phases", None) or ():
                self.phase(line)
        record = getattr(report, "structeval", None)
        if record is None or report.when != "call":
            return
        status = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        if report.failed and self.one_line_failures:
            # pytest's FAILURES section leaves out a report marked as already shown (as --pdb
            # marks it): the task's short-summary line, with its reason, is its one line; the
            # details are in report.json/report.html, and on the terminal with -v or --tb.
            report._pdbshown = True  # type: ignore[attr-defined]
            self.folded_failures += 1
        # Typed once, here, where the JSON a worker sent arrives.
        typed = TaskRecord.from_dict({**record, "status": status})
        run = getattr(report, "structeval_run", None)
        if run is not None:
            self.run_records.setdefault(run, {})[record["task_id"]] = typed
        else:
            self.records[record["task_id"]] = typed

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        meta = getattr(node, "workeroutput", {}).get("structeval")
        if meta is not None:
            self.worker_meta.append(meta)

    @pytest.hookimpl(tryfirst=True)  # before junitxml's, which writes the file
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        try:
            self._finish(session)
        finally:
            # The engine's release, started when generation ended, overlapped the tasks and the
            # reports; it ends here, not at unconfigure, so the phase lines count it. The
            # engines of a sweep, or one whose generation failed, are released here.
            if self._release is not None:
                waited = self._release.wait()
                self.clock.add("engine release (the part not overlapped)", waited)
            (self.sweep or self.evaluation).close()

    def _finish(self, session: pytest.Session) -> None:
        if not self.is_controller:
            meta = self.evaluation.local_meta()
            if self.sweep is not None:
                meta = {"runs": {n: e.local_meta() for n, e in self.sweep.evaluations.items()}}
            session.config.workeroutput["structeval"] = meta  # type: ignore[attr-defined]
            return
        shutil.rmtree(self.settings.output.out_dir / EXCHANGE_DIR, ignore_errors=True)
        if self.blocked is not None and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED  # a blocked run evaluated nothing
        if self.sweep is not None:
            self._finish_sweep(session)
        if self.records:
            meta = self.evaluation.meta(
                self.worker_meta, extra_versions={"pytest": pytest.__version__}
            )
            self.finished = self.evaluation.finish(self.records, selected=self.selected, meta=meta)
            failed = self.finished.error is not None
            dropped = self.finished.report is not None and self.finished.report.failed_gate
            if (failed or dropped) and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.verdict = self._verdict(session.exitstatus)
        self._junit_properties()

    def _verdict(self, exitstatus: int) -> GateVerdict | None:
        """The run's verdict: the report's (scores and baseline), plus what only the session
        knows (a blocked preflight, reports not written, an interrupted or failed session)."""
        finished = self.finished
        report = finished.report if finished is not None else None
        if report is None and self.blocked is None and finished is None:
            return None  # nothing was evaluated (--co, every task deselected)
        verdict = report.gate if report is not None else GateVerdict(False, ())
        if self.blocked is not None:
            # "preflight failed: <check>": the whole cause is the phase line above.
            verdict = verdict.with_reason(":".join(self.blocked.split(":")[:2]) + ", no task ran")
        if finished is not None and finished.error is not None:
            verdict = verdict.with_reason(f"the reports were not all written ({finished.error})")
        if exitstatus == pytest.ExitCode.INTERRUPTED:
            verdict = verdict.with_reason("interrupted")
        elif exitstatus != 0 and verdict.passed:
            # A failure that is not a task's score (a preflight check, another test).
            verdict = verdict.with_reason(f"pytest exit status {int(exitstatus)}")
        return verdict

    def _junit_properties(self) -> None:
        """The overall score, the estimate and the verdict as properties of the JUnit test
        suite (--junitxml), beside the per-task scores of each test case."""
        xml = self.config.stash.get(junit_xml_key, None)
        if xml is None or self.verdict is None:
            return
        report = self.finished.report if self.finished is not None else None
        if report is not None and report.aggregate.get("overall") is not None:
            xml.add_global_property("structeval_overall", report.aggregate["overall"])
            interval = report.aggregate.get("estimate_interval")
            if report.aggregate.get("headline") != "structeval":
                xml.add_global_property("structeval_estimate", report.aggregate["overall"])
            if interval:
                xml.add_global_property(
                    "structeval_estimate_interval", f"{interval[0]:.4f}-{interval[1]:.4f}"
                )
        xml.add_global_property("structeval_verdict", self.verdict.verdict)
        if self.verdict.reasons:
            xml.add_global_property("structeval_reasons", "; ".join(self.verdict.reasons))

    def _finish_sweep(self, session: pytest.Session) -> None:
        """Each run's outputs under ``<out>/<run>/``, then the comparison of them all."""
        assert self.sweep is not None
        versions = {"pytest": pytest.__version__}
        for name, evaluation in self.sweep.evaluations.items():
            records = self.run_records.get(name)
            if not records:
                continue
            parts = [m["runs"][name] for m in self.worker_meta if "runs" in m]
            meta = {**evaluation.meta(parts, extra_versions=versions), "run": name}
            finished = evaluation.finish(
                records, selected=self.selected_by_run.get(name), meta=meta
            )
            self.run_finished[name] = finished
            dropped = finished.report is not None and finished.report.failed_gate
            if (finished.error is not None or dropped) and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.comparison = compare(
            {n: self.sweep.evaluations[n].settings.output.out_dir for n in self.run_finished}
        )
        if self.comparison is not None:
            write_comparison(self.comparison, self.sweep.comparison_page)

    def _sweep_summary(self, terminalreporter: Any) -> None:
        assert self.sweep is not None
        for name, finished in self.run_finished.items():
            terminalreporter.write_sep("=", f"structeval summary: {name}")
            if finished.report is not None:
                for line in finished.report.lines(by_task_type=self.config.get_verbosity() > 0):
                    terminalreporter.write_line(line)
            if finished.error is not None:
                terminalreporter.write_line(
                    f"structeval: the reports of {name} were not all written ({finished.error})",
                    red=True,
                )
            terminalreporter.write_line("written: " + ", ".join(map(str, finished.written)))
        if self.comparison is not None:
            terminalreporter.write_sep(
                "=", f"structeval comparison of {len(self.run_finished)} runs"
            )
            for line in self.comparison.lines():
                terminalreporter.write_line(line)
            terminalreporter.write_line(f"written: {self.sweep.comparison_page}")

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.sweep is not None:
            self._sweep_summary(terminalreporter)
        finished = self.finished
        if finished is not None:
            terminalreporter.write_sep("=", "structeval summary")
            if finished.report is not None:
                for line in finished.report.lines(by_task_type=self.config.get_verbosity() > 0):
                    terminalreporter.write_line(line)
            unused = self.unused_snapshots()
            if unused:
                names = ", ".join(p.name for p in unused[:5]) + (" …" if len(unused) > 5 else "")
                terminalreporter.write_line(
                    f"snapshots: {len(unused)} for tasks no longer in {self.settings.tasks.name} "
                    f"(delete them if they are stale): {names}"
                )
            if finished.error is not None:
                terminalreporter.write_line(
                    f"structeval: the reports were not all written ({finished.error}); "
                    "inference.json holds every generation",
                    red=True,
                )
            terminalreporter.write_line("written: " + ", ".join(str(p) for p in finished.written))
        if self.folded_failures:
            terminalreporter.write_line(
                f"failing tasks: {self.folded_failures}, one line each in the short summary; "
                "their details with -v or --tb=short, and in report.html"
            )

    def unused_snapshots(self) -> list[Path]:
        """Snapshot files of this model whose task is gone from the task file (a -k/-m subset
        leaves the others alone: they are still in the task file)."""
        if self.snapshot_dir is None:
            return []
        directory = self.snapshot_dir / self.snapshot_slug()
        return unused_snapshots(directory, [task.task_id for task in self.evaluation.tasks])


@dataclass(eq=False)  # a registered plugin: pluggy hashes it, by identity
class VerdictLine:
    """The run's verdict as the terminal summary's last line (after syrupy's and the phases'
    sections), right above pytest's own counts: what the exit status says, and why."""

    session: StructevalSession

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        verdict = self.session.verdict
        if verdict is not None:
            terminalreporter.write_sep("-", "structeval verdict")
            passed = verdict.passed
            terminalreporter.write_line(verdict.line(), green=passed, red=not passed, bold=True)
