"""The evaluation, without pytest: select -> generate -> score -> judge -> report.

``Evaluation`` takes ``Settings``, a task selection and (optionally) a backend, owns the backend
(and with it any engine or server) as a context manager, and turns generations into scored
``TaskResult`` values and one ``Report``::

    from pytest_structeval import Evaluation, Settings

    with Evaluation(Settings.of(model="builtin:tiny", max_tokens=64)) as evaluation:
        report = evaluation.run()
        evaluation.write(report)
    print(report.summary["overall"])

The pytest plugin drives the same object: it collects one item per task, asks ``generate`` once
for the final selection, ``score`` per item, and ``finish`` with the records its items (and
xdist workers) produced. Nothing here imports pytest.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import __version__
from .backends.base import Backend, Generation, TaskFailure, generate_runs
from .backends.cache import GenerationCache
from .backends.engine import validate_engine_args
from .backends.replay import ReplayBackend
from .backends.served import OpenAIBackend, VllmServeBackend
from .backends.vllm_offline import VllmBackend
from .files import dump_json, write_atomic
from .models import ModelError, builtin_model, check_model_path, resolve_model
from .report.gate import Outcome, baseline_scores, load_baseline, task_verdict
from .report.report import Report, TaskRecord, submission
from .scoring import TaskScore, score_task
from .settings import Cache, Settings
from .tasks import Task, TaskSet, check_generations, load_generations

# A verdict as the outcome of the test that reports it (report.json's ``status``).
STATUS: dict[str, str] = {"pass": "passed", "fail": "failed", "xfail": "xfailed"}
# Counted per process and summed over xdist workers in report.json's meta: engine builds,
# generations, cache hits, tasks whose requests finally failed, requests sent again, and vLLM
# servers started.
COUNTERS = ("engine_builds", "generated", "cache_hits", "failed", "retries", "servers_started")
PhaseCallback = Callable[[str], None]


@dataclass(frozen=True)
class TaskResult:
    """One task's generation, its score, and the verdict a test reports.

    ``verdict`` is ``pass`` for a perfect score, ``fail`` otherwise; against a baseline it
    follows ``report.gate.task_verdict`` (regressions fail, known failures xfail). ``message``
    is what a failing test shows. ``snapshot`` is set by whoever compares the output with a
    stored snapshot (the pytest layer): new, match, updated or changed."""

    task: Task
    score: TaskScore
    generation: Generation
    verdict: Outcome
    message: str
    snapshot: str | None = None

    def with_snapshot(self, state: str) -> TaskResult:
        """The result with its snapshot state. A changed snapshot is reported, never judged:
        the verdict comes from the score and the baseline only."""
        return replace(self, snapshot=state)

    def reported(self, status: str) -> TaskRecord:
        """The task's entry in the report, once its test ended with ``status``."""
        g = self.generation
        return TaskRecord(
            self.score, g.text, status, g.prompt_tokens, g.from_cache, self.snapshot, self.verdict
        )

    def record(self) -> dict[str, Any]:
        """The task's entry in report.json before its test's status is known: plain JSON-safe
        data (it travels from xdist workers to the controller on the test report)."""
        data = self.reported("").to_dict()
        del data["status"]
        return data


def make_backend(
    settings: Settings,
    *,
    replay_generations: Mapping[str, str] | None = None,
    cache_dir: Path | None = None,
    progress: bool = True,
) -> Backend:
    """The backend the settings ask for. ``cache_dir`` overrides where generations are cached
    (the plugin passes a per-run directory when several processes must share generations
    but the user turned the cache off); ``progress``: a progress bar while generating."""
    if settings.replay:
        if replay_generations is None:
            assert settings.generations is not None
            replay_generations = load_generations(
                settings.generations, TaskSet.load(settings.tasks)
            )
        return ReplayBackend(dict(replay_generations), source=str(settings.generations))
    cache = generation_cache(settings.cache, cache_dir)
    engine, sampling, serving = settings.engine, settings.sampling, settings.serving
    if serving.endpoint is not None:
        return OpenAIBackend(engine, sampling, serving, cache=cache, progress=progress)
    assert engine.model is not None  # Settings: a local engine needs a model
    model_path = resolve_model(engine.model, root=settings.cache.root)
    if serving.serve:
        return VllmServeBackend(
            engine,
            sampling,
            serving,
            log_dir=settings.output.out_dir,
            model_path=model_path,
            cache=cache,
            progress=progress,
        )
    return VllmBackend(engine, sampling, model_path=model_path, cache=cache, progress=progress)


def generation_cache(cache: Cache, directory: Path | None) -> GenerationCache | None:
    if directory is not None:
        return GenerationCache(directory, refresh=cache.refresh)
    if cache.enabled:
        return GenerationCache(cache.root / "generations", refresh=cache.refresh)
    return None


def _check_builtin_model(name: str) -> None:
    """An unknown ``builtin:`` name, or one whose package is missing, is a ``ModelError`` now,
    not after the preflight (the message carries the install command)."""
    check_model_path(name)
    recipe = builtin_model(name)
    reason = recipe.unavailable() if recipe is not None else None
    if reason is not None:
        raise ModelError(reason)


class SharedGenerationError(RuntimeError):
    """Another process of the same run failed to generate; the message is its error."""


@dataclass(frozen=True)
class SharedGeneration:
    """Processes of one run (pytest-xdist workers) that share one generation.

    The first process that needs generations takes a file lock and generates every selected
    task; the others wait on the lock, then read what it stored in the shared cache. There is
    no fixed owner, so a worker that receives no test never leaves the others waiting, and an
    owner that dies releases the lock with its process. A failure is written beside the lock
    before it is released: every waiter raises that same error at once instead of trying again;
    so are the tasks whose requests finally failed (served backends), which the waiters then
    report as failed instead of sending them again.
    """

    directory: Path

    def generate(
        self, backend: Backend, tasks: Sequence[Task], *, on_phase: PhaseCallback | None = None
    ) -> dict[str, Generation]:
        return self.generate_all([(backend, tasks)], on_phase=on_phase)[0]

    def generate_all(
        self,
        work: Sequence[tuple[Backend, Sequence[Task]]],
        *,
        on_phase: PhaseCallback | None = None,
        release: bool = False,
    ) -> list[dict[str, Generation]]:
        """``base.generate_runs`` once for every process of the run (one dict per backend)."""
        backends = [backend for backend, _ in work]
        from filelock import FileLock  # light, but only multi-process runs need it

        self.directory.mkdir(parents=True, exist_ok=True)
        failed = self.directory / "failed.txt"
        done = self.directory / "done.json"
        with FileLock(str(self.directory / "generate.lock")):
            if failed.exists():
                raise SharedGenerationError(failed.read_text(encoding="utf-8"))
            if done.exists():
                for entry in json.loads(done.read_text(encoding="utf-8"))["task_failures"]:
                    run = entry.pop("run", 0)
                    backends[run].failures[entry["task_id"]] = TaskFailure(**entry)
                rest = [
                    (backend, [t for t in tasks if t.task_id not in backend.failures])
                    for backend, tasks in work
                ]
                return generate_runs(rest, on_phase=on_phase, read_only=True)
            try:
                generations = generate_runs(work, on_phase=on_phase, release=release)
            except Exception as exc:
                write_atomic(failed, str(exc) or type(exc).__name__)
                raise
            failures = [
                {**failure.to_dict(), "run": run}
                for run, backend in enumerate(backends)
                for failure in backend.failures.values()
            ]
            write_atomic(done, json.dumps({"task_failures": failures}))
            return generations


class Evaluation:
    """Settings + tasks + backend in; scored ``TaskResult`` values and a ``Report`` out.

    ``tasks`` defaults to the settings' task file; ``backend`` to the one the settings ask for
    (built on first use, so that validating and collecting never start an engine). The
    evaluation owns the backend: ``close()`` (or leaving the ``with`` block) releases its
    engine or server."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        tasks: TaskSet | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings()
        self.tasks = tasks if tasks is not None else TaskSet.load(self.settings.tasks)
        # Every input file is read and checked here, before anything can start an engine;
        # which tasks must have a generation depends on the selection (check_selection).
        self.replay_generations = (
            load_generations(self.settings.generations, self.tasks, selected=())
            if self.settings.generations is not None
            else None
        )
        baseline = self.settings.gate.baseline
        self.baseline = load_baseline(baseline) if baseline is not None else None
        if self.settings.local_engine:
            assert self.settings.engine.model is not None  # Settings: a local engine has one
            _check_builtin_model(self.settings.engine.model)
        self._backend = backend
        self._baseline_scores: dict[str, float] | None = None
        self.timings: dict[str, float] = {}

    def __enter__(self) -> Evaluation:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- backend ---------------------------------------------------------------------------

    def backend_for(self, *, cache_dir: Path | None = None, progress: bool = True) -> Backend:
        """The backend, built on first call (``cache_dir``, ``progress``: see
        ``make_backend``)."""
        if self._backend is None:
            self._backend = make_backend(
                self.settings,
                replay_generations=self.replay_generations,
                cache_dir=cache_dir,
                progress=progress,
            )
        return self._backend

    def share_backend(self, backend: Backend) -> None:
        """Use ``backend`` (a sweep's, sharing an engine with other runs) unless one is built."""
        if self._backend is None:
            self._backend = backend

    @property
    def backend(self) -> Backend:
        return self.backend_for()

    @property
    def timed(self) -> dict[str, float]:
        """What this process has timed so far: the backend's phases (engine start, ...) and the
        evaluation's own (generation, scoring). Asking builds no backend."""
        backend = self._backend.stats.timings if self._backend is not None else {}
        return {**backend, **self.timings}

    @property
    def failures(self) -> dict[str, TaskFailure]:
        """Tasks whose generation failed for good (served backends), by task id."""
        return self._backend.failures if self._backend is not None else {}

    def close(self, *, grace: float | None = None) -> None:
        """Release the backend's engine or server (``grace``: see ``Backend.close``)."""
        if self._backend is not None:
            self._backend.close(grace=grace)

    # -- the pipeline ----------------------------------------------------------------------

    def select(self, task_ids: Iterable[str] | None = None) -> list[Task]:
        """Tasks in task-file order; ``task_ids`` (any order) narrows them."""
        if task_ids is None:
            return list(self.tasks)
        wanted = set(task_ids)
        unknown = wanted - set(self.tasks.by_id())
        if unknown:
            raise KeyError(f"not in {self.tasks.source}: {', '.join(sorted(unknown))}")
        return [task for task in self.tasks if task.task_id in wanted]

    def check_selection(self, tasks: Sequence[Task]) -> None:
        """Raise ``InputError`` when a replay lacks a generation for a selected task."""
        if self.replay_generations is not None:
            assert self.settings.generations is not None
            check_generations(
                self.settings.generations, self.replay_generations, (t.task_id for t in tasks)
            )

    def validate_engine_args(self) -> None:
        """Check ``vllm_args`` against this vLLM's own argument types, before any engine
        starts (``backends.engine.EngineArgumentError`` names the argument). Imports vLLM."""
        if not self.settings.local_engine or not self.settings.engine.vllm_args:
            return
        validate_engine_args(self.settings.engine.vllm_args)

    def generate(
        self,
        tasks: Sequence[Task],
        *,
        on_phase: PhaseCallback | None = None,
        shared: SharedGeneration | None = None,
    ) -> dict[str, Generation]:
        """One generation per task, in one batch, generating only what the cache lacks."""
        self.check_selection(tasks)
        started = time.perf_counter()
        backend = self.backend
        try:
            if shared is not None and not self.settings.replay:
                return shared.generate(backend, tasks, on_phase=on_phase)
            return backend.generate(tasks, on_phase=on_phase)
        finally:
            # Also when interrupted or failed: the time went to generating, not elsewhere.
            self.timings["generation"] = time.perf_counter() - started

    def score(self, task: Task, generation: Generation) -> TaskResult:
        """Score one generation and judge it (against the baseline when there is one)."""
        started = time.perf_counter()
        result = score_task(
            task,
            generation.text,
            mode=self.settings.scoring.mode,
            finish_reason=generation.finish_reason,
        )
        self.timings["scoring"] = self.timings.get("scoring", 0.0) + time.perf_counter() - started
        verdict, message = self._judge(task, result)
        return TaskResult(task, result, generation, verdict, message)

    def _judge(self, task: Task, result: TaskScore) -> tuple[Outcome, str]:
        """The verdict and its message: one line that says why (pytest's short summary shows
        it), then the scorer's explanation."""
        explanation = result.explain() if result.score < 1.0 else ""
        if self.baseline is None:
            if result.score >= 1.0:
                return "pass", ""
            return "fail", f"{result.headline()}\n{explanation}"
        if self._baseline_scores is None:
            self._baseline_scores = baseline_scores(self.baseline)
        verdict = task_verdict(
            self._baseline_scores.get(task.task_id),
            result.score,
            strict_regressions=self.settings.gate.strict_regressions,
        )
        if not explanation:
            return verdict.outcome, verdict.message
        first = f"{verdict.message}: {result.reason()}" if verdict.message else result.headline()
        return verdict.outcome, f"{first}\n{explanation}"

    def run(
        self, task_ids: Iterable[str] | None = None, *, on_phase: PhaseCallback | None = None
    ) -> Report:
        """Select, generate, score and report in one call."""
        selected = self.select(task_ids)
        generations = self.generate(selected, on_phase=on_phase)
        records = {}
        for task in selected:
            result = self.score(task, generations[task.task_id])
            records[task.task_id] = result.reported(STATUS[result.verdict])
        return self.report(records, selected=selected)

    # -- reporting -------------------------------------------------------------------------

    def local_meta(self) -> dict[str, Any]:
        """This process's part of report.json's ``meta`` (xdist workers each send theirs)."""
        if self._backend is None:
            return {"engine_builds": 0, "timings": dict(self.timings)}
        backend = self._backend
        return {
            **backend.meta(),
            **{name: getattr(backend.stats, name) for name in COUNTERS},
            "timings": self.timed,
        }

    def meta(
        self,
        parts: Sequence[Mapping[str, Any]] = (),
        *,
        extra_versions: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """report.json's ``meta`` from the parts of every process (this one's by default)."""
        # Under xdist one worker generates; the others' backends never started (their
        # endpoint is None, say). The parts that did the work come first and describe it,
        # whatever order the workers finished in. Cache hits are no such work: a worker that
        # waited reads every generation from the cache.
        work = [counter for counter in COUNTERS if counter != "cache_hits"]
        parts = sorted(
            list(parts) or [self.local_meta()],
            key=lambda part: -sum(int(part.get(counter, 0)) for counter in work),
        )
        meta: dict[str, Any] = {}
        for part in parts:
            for key, value in part.items():
                meta.setdefault(key, value)
        for counter in COUNTERS:
            meta[counter] = sum(int(p.get(counter, 0)) for p in parts)
        meta.setdefault("backend", "replay" if self.settings.replay else "vllm")
        meta.setdefault("model", None if self.settings.replay else self.settings.engine.model)
        versions = dict(meta.get("versions") or {})
        versions.setdefault("python", platform.python_version())
        versions.setdefault("pytest-structeval", __version__)
        for name, version in (extra_versions or {}).items():
            versions.setdefault(name, version)
        meta["versions"] = versions
        meta["tasks_file"] = str(self.settings.tasks)
        meta["scoring_mode"] = self.settings.scoring.mode
        meta["workers"] = len(parts)
        return meta

    def report(
        self,
        records: Mapping[str, TaskRecord],
        *,
        selected: Sequence[Task] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Report:
        """The report over ``records`` (task_id -> ``TaskResult.reported(status)``), compared
        with the baseline over the same tasks when there is one."""
        return Report.build(
            records,
            self.tasks,
            meta=meta if meta is not None else self.meta(),
            weights=self.settings.scoring.format_weights,
            baseline=self.baseline,
            max_drop=self.settings.gate.max_drop,
            selected=None if selected is None else [task.task_id for task in selected],
        )

    def write(self, report: Report, out_dir: Path | None = None) -> list[Path]:
        """inference.json, report.json and report.html, each written atomically."""
        out = out_dir if out_dir is not None else self.settings.output.out_dir
        write_atomic(out / "inference.json", dump_json(report.inference()))
        written = [out / "inference.json"]
        for name, text in report.files().items():
            write_atomic(out / name, text())
            written.append(out / name)
        return written

    def finish(
        self,
        records: Mapping[str, TaskRecord],
        *,
        selected: Sequence[Task] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Finished:
        """Write every output of a finished run. inference.json goes first, straight from the
        records: nothing optional (metadata, the baseline, the HTML page) may stand between
        finished generations and the submission file. A failure after that is returned, not
        raised, with the files written before it."""
        out = self.settings.output.out_dir
        ordered = [records[t.task_id] for t in self.tasks if t.task_id in records]
        write_atomic(out / "inference.json", dump_json(submission(ordered)))
        written = [out / "inference.json"]
        report = None
        try:
            report = self.report(records, selected=selected, meta=meta)
            for name, text in report.files().items():
                write_atomic(out / name, text())
                written.append(out / name)
        except Exception as exc:
            return Finished(report, written, f"{type(exc).__name__}: {exc}")
        return Finished(report, written, None)


@dataclass(frozen=True)
class Finished:
    """What ``Evaluation.finish`` produced: the report (None when building it failed), the
    files written, and the error that stopped the rest, if any."""

    report: Report | None
    written: list[Path]
    error: str | None
