"""A sweep (issue 23): several --adapter on one engine, several --model one after another.

Real engines on the tiny model and hand-written LoRA adapters (testing/support.py); each
session is a fresh ``python -m pytest`` process, as a user runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import OPEN150, Run, build_lora_adapter, run_pytest

# The tiny model is noise: its tasks fail, so a finished session exits 1 (tests failed).
ENGINE = ("--max-tokens=8", "--vllm-arg", "enforce_eager=true", "-m", "smoke", f"--tasks={OPEN150}")
NAMES = ("a0", "a1", "a2")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sweep")


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, project: Path) -> dict[str, Path]:
    return {
        name: build_lora_adapter(tiny_model, project / "adapters" / name, seed=seed)
        for seed, name in enumerate((*NAMES, "a3"))
    }


def sweep(project: Path, name: str, model: Path, *args: str) -> Run:
    return run_pytest(
        project, name, "-q", "-rs", f"--model={model}", f"--cache-dir={project / 'cache'}",
        *ENGINE, *args,
    )


@pytest.fixture(scope="module")
def three(project: Path, tiny_model: Path, adapters: dict[str, Path]) -> Run:
    return sweep(project, "three", tiny_model, *(f"--adapter={n}={adapters[n]}" for n in NAMES))


def reports(run: Run, names: tuple[str, ...]) -> dict[str, dict]:
    return {
        n: json.loads((run.out / n / "report.json").read_text(encoding="utf-8")) for n in names
    }


def test_three_adapters_one_engine_three_runs_one_comparison(three: Run) -> None:
    assert three.returncode == 1, three.output[-3000:]
    metas = {n: r["meta"] for n, r in reports(three, NAMES).items()}
    assert sum(m["engine_builds"] for m in metas.values()) == 1
    assert {m["run"] for m in metas.values()} == set(NAMES)
    assert len({m["adapter"] for m in metas.values()}) == 3
    assert all(m["generated"] > 0 and m["cache_hits"] == 0 for m in metas.values())
    assert (three.out / "compare.html").is_file()
    assert "structeval comparison of 3 runs" in three.output


def test_each_adapter_generates_what_a_run_of_its_own_generates(
    three: Run, project: Path, tiny_model: Path, adapters: dict[str, Path]
) -> None:
    for name in NAMES:
        alone = run_pytest(
            project, f"alone-{name}", "-q", f"--model={tiny_model}", f"--adapter={adapters[name]}",
            "--no-cache", *ENGINE,
        )
        assert alone.returncode == 1, alone.output[-3000:]
        swept = json.loads((three.out / name / "inference.json").read_text(encoding="utf-8"))
        assert swept == alone.inference, name


def test_a_fourth_adapter_generates_only_for_itself(
    three: Run, project: Path, tiny_model: Path, adapters: dict[str, Path]
) -> None:
    four = sweep(project, "four", tiny_model, *(f"--adapter={n}={p}" for n, p in adapters.items()))
    assert four.returncode == 1, four.output[-3000:]
    metas = {n: r["meta"] for n, r in reports(four, (*NAMES, "a3")).items()}
    tasks = len(reports(three, ("a0",))["a0"]["tasks"])
    for name in NAMES:
        assert (metas[name]["generated"], metas[name]["cache_hits"]) == (0, tasks)
    assert (metas["a3"]["generated"], metas["a3"]["cache_hits"]) == (tasks, 0)
    assert sum(m["engine_builds"] for m in metas.values()) == 1


def test_k_selects_one_run_by_name(three: Run, project: Path, tiny_model: Path, adapters) -> None:
    only = sweep(
        project, "only", tiny_model, *(f"--adapter={n}={adapters[n]}" for n in NAMES), "-k", "a1"
    )
    assert only.returncode == 1, only.output[-3000:]
    assert (only.out / "a1" / "report.json").is_file()
    assert not (only.out / "a0" / "report.json").exists()


def test_two_checkpoints_one_engine_after_the_other(project: Path, tiny_model: Path) -> None:
    run = run_pytest(
        project, "models", "-q", "-s", f"--model=m1={tiny_model}", f"--model=m2={tiny_model}",
        "--no-cache", *ENGINE,
    )
    assert run.returncode == 1, run.output[-3000:]
    lines = [line for line in run.output.splitlines() if line.startswith("structeval: ")]
    # The phase lines while generating, up to the one that says all runs are ready (the phase
    # table at the end repeats "engine start" as a total).
    lines = lines[: next(i for i, line in enumerate(lines) if "runs ready" in line)]
    events = [
        "start" if "engine start" in line else "released"
        for line in lines
        if "engine start" in line or "engine released" in line
    ]
    assert events == ["start", "released", "start", "released"], lines
    metas = {n: r["meta"] for n, r in reports(run, ("m1", "m2")).items()}
    assert [m["engine_builds"] for m in metas.values()] == [1, 1]
    assert (run.out / "compare.html").is_file()
