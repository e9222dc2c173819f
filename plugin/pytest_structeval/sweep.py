"""A sweep: several runs (adapters on one base model, or full checkpoints) in one session.

Without pytest: each run is a ``NamedRun`` (a name and its own ``Settings``: model, adapter,
baseline, ``out_dir = <out>/<name>``), evaluated by its own ``core.Evaluation`` (report,
outputs, snapshots), while generation is shared: adapters on one base model go to one engine
(or one ``--serve`` server) with every adapter loaded, in one batch; checkpoints get an engine
each, one after another, each closed before the next starts. Every run keeps its own cache
identity, so a sweep that gains a run generates for that run only::

    from pytest_structeval.sweep import Sweep, sweep_runs
    runs = sweep_runs(Settings.of(model="builtin:tiny"), adapters=["a=ckpt/a", "ckpt/b"])
    with Sweep(runs) as sweep:
        reports = sweep.run()
        sweep.write(reports)
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .backends.adapter import ALLOWED_LORA_RANKS, validate_adapter
from .backends.base import Backend, Generation, generate_runs
from .backends.served import VllmServeBackend
from .backends.vllm_offline import VllmBackend
from .core import STATUS, Evaluation, PhaseCallback, SharedGeneration, generation_cache
from .files import write_atomic
from .models import resolve_model
from .report.report import Report
from .report.runs import Run, compare_runs, load_run, render_comparison_html
from .settings import Settings, SettingsError
from .tasks import Task, TaskSet

COMPARISON_PAGE = "compare.html"
_NAME = re.compile(r"[A-Za-z0-9][\w.+-]*")


@dataclass(frozen=True)
class NamedRun:
    """One run of a sweep: its name (a node id part, a folder under ``--out``) and settings."""

    name: str
    settings: Settings


def split_name(text: str) -> tuple[str | None, str]:
    """``NAME=VALUE`` -> (NAME, VALUE); a value without such a prefix -> (None, VALUE)."""
    name, sep, value = text.partition("=")
    if sep and _NAME.fullmatch(name) and value:
        return name, value
    return None, text


def default_name(value: str) -> str:
    """A run's name from what it evaluates: the directory's (or hub id's, or builtin's) last
    part, in characters a node id and a folder take."""
    last = value.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
    return re.sub(r"[^\w.+-]", "_", last) or "run"


def unique_names(items: Sequence[tuple[str | None, str]]) -> list[str]:
    """Each item's name (given, else ``default_name``); repeated names get ``-2``, ``-3``."""
    names: list[str] = []
    for given, value in items:
        name = given or default_name(value)
        base, n = name, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def sweep_runs(
    base: Settings,
    *,
    models: Sequence[str] = (),
    adapters: Sequence[str] = (),
    baselines: Sequence[str | Path] = (),
) -> tuple[NamedRun, ...]:
    """The runs that several ``--model`` or several ``--adapter`` values ask for (each value
    ``[NAME=]VALUE``), or () when they ask for one run (the settings' own).

    ``baselines``: a path gates every run; ``NAME=PATH`` gates the run NAME (and wins over an
    unnamed one)."""
    if len(models) > 1 and adapters:
        raise SettingsError(
            "give several --model or several --adapter, not both (an adapter belongs to one "
            "base model: sweep the adapters of one --model, or the checkpoints without adapters)"
        )
    if len(models) <= 1 and len(adapters) <= 1:
        return ()
    axis = "adapter" if len(adapters) > 1 else "model"
    items = [split_name(v) for v in (adapters if axis == "adapter" else models)]
    names = unique_names(items)
    default: Path | None = None
    named: dict[str, Path] = {}
    for text in baselines:
        name, value = split_name(str(text))
        if name is None or (name not in names and Path(str(text)).exists()):
            default = Path(str(text))
        elif name not in names:
            raise SettingsError(
                f"--baseline {text}: no run named {name!r} (the runs: {', '.join(names)})"
            )
        else:
            named[name] = Path(value)
    out = base.output.out_dir
    runs = []
    for name, (_, value) in zip(names, items, strict=True):
        engine = dataclasses.replace(base.engine, **{axis: value})
        baseline = named.get(name, default)
        runs.append(
            NamedRun(
                name,
                dataclasses.replace(
                    base,
                    engine=engine,
                    gate=dataclasses.replace(base.gate, baseline=baseline),
                    output=dataclasses.replace(base.output, out_dir=out / name),
                ),
            )
        )
    return tuple(runs)


def sweep_backends(
    runs: Sequence[NamedRun], *, cache_dir: Path | None = None
) -> list[Backend | None]:
    """The runs' backends when they share an engine (adapters of one base model on the
    in-process engine or the session's server): one leads, with every adapter loaded and the
    largest rank. None for runs that get the ordinary backend of their settings."""
    first = runs[0].settings
    adapters = [run.settings.engine.adapter for run in runs]
    shared = (
        first.local_engine
        and all(adapters)
        and len({run.settings.engine.model for run in runs}) == 1
    )
    if not shared:
        return [None] * len(runs)
    engine = first.engine
    requested = max(validate_adapter(str(a)).rank for a in adapters)
    rank = next(r for r in ALLOWED_LORA_RANKS if r >= requested)
    assert engine.model is not None
    model_path = resolve_model(engine.model, root=first.cache.root)
    backends: list[Backend | None] = []
    lead: Backend | None = None
    for run in runs:
        s = run.settings
        cache = generation_cache(s.cache, cache_dir)
        if s.serving.serve:
            backend: Backend = VllmServeBackend(
                s.engine,
                s.sampling,
                s.serving,
                log_dir=s.output.out_dir.parent,
                model_path=model_path,
                cache=cache,
                max_lora_rank=rank,
                lora_modules={r.name: str(r.settings.engine.adapter) for r in runs},
                module=run.name,
                lead=lead,  # type: ignore[arg-type]
            )
        else:
            backend = VllmBackend(
                s.engine,
                s.sampling,
                model_path=model_path,
                cache=cache,
                max_lora_rank=rank,
                max_loras=len(runs),
                lead=lead,  # type: ignore[arg-type]
            )
        lead = lead or backend
        backends.append(backend)
    return backends


class Sweep:
    """The evaluations of several runs over one task selection, generating together."""

    def __init__(self, runs: Sequence[NamedRun], *, tasks: TaskSet | None = None) -> None:
        if not runs:
            raise ValueError("a sweep needs at least one run")
        self.runs = tuple(runs)
        first = self.runs[0].settings
        self.tasks = tasks if tasks is not None else TaskSet.load(first.tasks)
        self.evaluations: dict[str, Evaluation] = {
            run.name: Evaluation(run.settings, tasks=self.tasks) for run in self.runs
        }
        self._backends_made = False
        self.timings: dict[str, float] = {}

    def __enter__(self) -> Sweep:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        for evaluation in self.evaluations.values():
            evaluation.close()

    @property
    def primary(self) -> Evaluation:
        return self.evaluations[self.runs[0].name]

    def backends(self, *, cache_dir: Path | None = None) -> list[Backend]:
        """Each run's backend (built on first call; shared engine where the runs allow)."""
        if not self._backends_made:
            shared = sweep_backends(self.runs, cache_dir=cache_dir)
            for run, backend in zip(self.runs, shared, strict=True):
                evaluation = self.evaluations[run.name]
                if backend is not None:
                    evaluation.share_backend(backend)
            self._backends_made = True
        return [self.evaluations[run.name].backend_for(cache_dir=cache_dir) for run in self.runs]

    def generate(
        self,
        tasks: Sequence[Task] | Mapping[str, Sequence[Task]],
        *,
        on_phase: PhaseCallback | None = None,
        shared: SharedGeneration | None = None,
        cache_dir: Path | None = None,
    ) -> dict[str, dict[str, Generation]]:
        """Every run's generations of ``tasks`` (the same for every run, or by run name), by
        run name: one batch per shared engine; engines of different checkpoints one after
        another, each closed before the next starts."""
        chosen = {
            run.name: list(tasks.get(run.name, ()) if isinstance(tasks, Mapping) else tasks)
            for run in self.runs
        }
        for name, evaluation in self.evaluations.items():
            evaluation.check_selection(chosen[name])
        started = time.perf_counter()
        backends = self.backends(cache_dir=cache_dir)
        work = [
            (backend, chosen[run.name])
            for run, backend in zip(self.runs, backends, strict=True)
            if chosen[run.name]
        ]
        if shared is not None:
            found = shared.generate_all(work, on_phase=on_phase, release=True)
        else:
            found = generate_runs(work, on_phase=on_phase, release=True)
        seconds = time.perf_counter() - started
        self.timings["generation"] = seconds
        for evaluation in self.evaluations.values():
            evaluation.timings["generation"] = seconds
        names = [run.name for run in self.runs if chosen[run.name]]
        return {run.name: {} for run in self.runs} | dict(zip(names, found, strict=True))

    def run(
        self, task_ids: Iterable[str] | None = None, *, on_phase: PhaseCallback | None = None
    ) -> dict[str, Report]:
        """Select, generate, score and report every run."""
        selected = self.primary.select(task_ids)
        generations = self.generate(selected, on_phase=on_phase)
        reports = {}
        for name, evaluation in self.evaluations.items():
            records = {}
            for task in selected:
                generation = generations[name].get(task.task_id)
                if generation is None:
                    continue
                result = evaluation.score(task, generation)
                records[task.task_id] = result.reported(STATUS[result.verdict])
            reports[name] = evaluation.report(records, selected=selected)
        return reports

    def write(self, reports: Mapping[str, Report]) -> list[Path]:
        """Each run's files under ``<out>/<name>/``, then the comparison page."""
        written = []
        for name, report in reports.items():
            written += self.evaluations[name].write(report)
        comparison = compare(
            {name: self.evaluations[name].settings.output.out_dir for name in reports}
        )
        if comparison is not None:
            written.append(write_comparison(comparison, self.comparison_page))
        return written

    @property
    def comparison_page(self) -> Path:
        return self.runs[0].settings.output.out_dir.parent / COMPARISON_PAGE


def compare(report_dirs: Mapping[str, Path]):  # -> RunsComparison | None
    """The comparison of the runs whose report.json exists (labelled by run name)."""
    runs: list[Run] = [
        load_run(directory / "report.json", label=name)
        for name, directory in report_dirs.items()
        if (directory / "report.json").is_file()
    ]
    return compare_runs(runs) if len(runs) > 1 else None


def write_comparison(comparison, page: Path) -> Path:
    write_atomic(page, render_comparison_html(comparison))
    return page
