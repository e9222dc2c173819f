"""Command-line options and ini keys: declared once, in one group, as plain picklable values.

pytest-xdist ships option values to its workers, so everything here stays str/int/float/bool.
Defaults that differ from vLLM's are the official competition notebook's and say so.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from .tasks import BUNDLED_TASKS, FORMATS

DEFAULT_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
DEFAULT_OUT = "structeval-out"


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _key_value(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def _format_weights(text: str) -> str:
    parse_format_weights(text)  # reject at parse time; keep the plain string for xdist
    return text


def parse_format_weights(text: str) -> dict[str, float]:
    """``json=0.3,yaml=0.2,...`` -> weights per lower-case output format."""
    weights: dict[str, float] = {}
    known = set(FORMATS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in known:
            raise argparse.ArgumentTypeError(
                f"expected FORMAT=WEIGHT with FORMAT in {sorted(known)}, got {part!r}"
            )
        weights[name] = float(value)
        if weights[name] < 0:
            raise argparse.ArgumentTypeError(f"weight for {name} must be >= 0")
    return weights


def parse_vllm_args(items: Iterable[str]) -> dict[str, object]:
    """``--vllm-arg KEY=VALUE``: VALUE is read as JSON when it parses (``true``, ``64``,
    ``{"a": 1}``), Python-style ``True``/``False``/``None`` are accepted too, else it stays a
    string, so ``enforce_eager=true`` is a bool and ``max_num_seqs=64`` an int."""
    literals = {"True": True, "False": False, "None": None}
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--vllm-arg expects KEY=VALUE, got {item!r}")
        if value in literals:
            parsed[key] = literals[value]
            continue
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("structeval", "StructEval-T evaluation (pytest-structeval)")
    group.addoption(
        "--model",
        dest="structeval_model",
        metavar="ID_OR_PATH",
        default=None,
        help=f"HF model id, local model directory, or builtin:tiny (default: {DEFAULT_MODEL}; "
        "ini: structeval_model).",
    )
    group.addoption(
        "--tasks",
        dest="structeval_tasks",
        metavar="PATH",
        default=None,
        help="task file in public_150.json format (default: the bundled data/open150.json; "
        "ini: structeval_tasks).",
    )
    group.addoption(
        "--generations",
        dest="structeval_generations",
        metavar="PATH",
        default=None,
        help="replay: score an existing inference.json instead of generating (no engine).",
    )
    group.addoption(
        "--out",
        dest="structeval_out",
        metavar="DIR",
        default=None,
        help=f"where report.json, inference.json and report.html go (default: {DEFAULT_OUT}/; "
        "ini: structeval_out).",
    )
    group.addoption(
        "--adapter",
        dest="structeval_adapter",
        metavar="PATH_OR_ID",
        default=None,
        help="evaluate a LoRA adapter through vLLM's LoRA support, without merging.",
    )
    group.addoption(
        "--max-tokens",
        dest="structeval_max_tokens",
        metavar="N",
        type=_positive_int,
        default=4096,
        help="tokens to generate per task (default: 4096, as the official notebook).",
    )
    group.addoption(
        "--temperature",
        dest="structeval_temperature",
        metavar="T",
        type=_non_negative_float,
        default=0.0,
        help="sampling temperature (default: 0, greedy, as the official notebook).",
    )
    group.addoption(
        "--seed",
        dest="structeval_seed",
        metavar="N",
        type=int,
        default=0,
        help="sampling seed given to vLLM (default: 0).",
    )
    group.addoption(
        "--max-model-len",
        dest="structeval_max_model_len",
        metavar="N",
        type=_positive_int,
        default=4096,
        help="engine context length (default: 4096, as the official notebook).",
    )
    group.addoption(
        "--gpu-memory-utilization",
        dest="structeval_gpu_memory_utilization",
        metavar="F",
        type=_fraction,
        default=None,
        help="fraction of device memory for vLLM (default: vLLM's own default).",
    )
    group.addoption(
        "--dtype",
        dest="structeval_dtype",
        metavar="DTYPE",
        default="auto",
        choices=("auto", "float32", "float16", "bfloat16", "half", "float"),
        help="model dtype (default: auto; float32 on CPU, where vLLM's bf16 kernels crash).",
    )
    group.addoption(
        "--vllm-arg",
        dest="structeval_vllm_args",
        metavar="KEY=VALUE",
        action="append",
        type=_key_value,
        default=[],
        help="extra keyword argument for vllm.LLM, repeatable; VALUE is parsed as JSON if it can be.",
    )
    group.addoption(
        "--structured-outputs",
        dest="structeval_structured_outputs",
        action="store_true",
        help="constrain decoding to the task's output format (vLLM structured outputs).",
    )
    group.addoption(
        "--trust-remote-code",
        dest="structeval_trust_remote_code",
        action="store_true",
        help="allow model repositories to run their own code (off by default).",
    )
    group.addoption(
        "--no-cache",
        dest="structeval_no_cache",
        action="store_true",
        help="neither read nor write the generation cache.",
    )
    group.addoption(
        "--refresh",
        dest="structeval_refresh",
        action="store_true",
        help="regenerate every selected task and overwrite its cache entry.",
    )
    group.addoption(
        "--cache-dir",
        dest="structeval_cache_dir",
        metavar="DIR",
        default=None,
        help="generation cache (default: $PYTEST_STRUCTEVAL_CACHE or ~/.cache/pytest-structeval).",
    )
    group.addoption(
        "--scoring-mode",
        dest="structeval_scoring_mode",
        choices=("upstream", "strict"),
        default="upstream",
        help="upstream: score as StructEval does (default); strict: competitor-style checks.",
    )
    group.addoption(
        "--format-weights",
        dest="structeval_format_weights",
        metavar="FMT=W,...",
        type=_format_weights,
        default=None,
        help="weights of the per-format means in the competition estimate "
        "(ini: structeval_format_weights; default: the scorer's).",
    )
    group.addoption(
        "--baseline",
        dest="structeval_baseline",
        metavar="PATH",
        default=None,
        help="report.json of an earlier run: fail tasks that regressed from 1.0.",
    )
    group.addoption(
        "--max-drop",
        dest="structeval_max_drop",
        metavar="D",
        type=_non_negative_float,
        default=0.01,
        help="with --baseline, fail the session when the overall score drops "
        "by more than D (default: 0.01).",
    )
    group.addoption(
        "--strict-regressions",
        dest="structeval_strict_regressions",
        action="store_true",
        help="with --baseline, fail (not xfail) tasks that were imperfect and got worse.",
    )
    parser.addini("structeval_model", "default for --model", default=DEFAULT_MODEL)
    parser.addini("structeval_tasks", "default for --tasks", default="")
    parser.addini("structeval_out", "default for --out", default=DEFAULT_OUT)
    parser.addini("structeval_format_weights", "default for --format-weights", default="")


@dataclass(frozen=True)
class Settings:
    """The resolved options of one session: plain values, paths made absolute."""

    model: str
    tasks_path: Path
    tasks_explicit: bool
    generations_path: Path | None
    out_dir: Path
    adapter: str | None
    max_tokens: int
    temperature: float
    seed: int
    max_model_len: int
    gpu_memory_utilization: float | None
    dtype: str
    vllm_args: dict[str, object]
    structured_outputs: bool
    trust_remote_code: bool
    no_cache: bool
    refresh: bool
    cache_dir: Path
    scoring_mode: str
    format_weights: dict[str, float] | None
    baseline_path: Path | None
    max_drop: float
    strict_regressions: bool

    @property
    def replay(self) -> bool:
        return self.generations_path is not None

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        def opt(name: str):
            return config.getoption(f"structeval_{name}")

        root = config.invocation_params.dir

        def path(value: str | None) -> Path | None:
            return (root / value).resolve() if value else None

        tasks_value = opt("tasks") or config.getini("structeval_tasks") or None
        weights_text = opt("format_weights") or config.getini("structeval_format_weights") or ""
        cache_dir = (
            opt("cache_dir")
            or os.environ.get("PYTEST_STRUCTEVAL_CACHE")
            or str(Path.home() / ".cache" / "pytest-structeval")
        )
        return cls(
            model=opt("model") or config.getini("structeval_model"),
            tasks_path=path(tasks_value) or BUNDLED_TASKS,
            tasks_explicit=tasks_value is not None,
            generations_path=path(opt("generations")),
            out_dir=path(opt("out") or config.getini("structeval_out")) or root / DEFAULT_OUT,
            adapter=opt("adapter"),
            max_tokens=opt("max_tokens"),
            temperature=opt("temperature"),
            seed=opt("seed"),
            max_model_len=opt("max_model_len"),
            gpu_memory_utilization=opt("gpu_memory_utilization"),
            dtype=opt("dtype"),
            vllm_args=parse_vllm_args(opt("vllm_args")),
            structured_outputs=opt("structured_outputs"),
            trust_remote_code=opt("trust_remote_code"),
            no_cache=opt("no_cache"),
            refresh=opt("refresh"),
            cache_dir=Path(cache_dir).expanduser().resolve(),
            scoring_mode=opt("scoring_mode"),
            format_weights=parse_format_weights(weights_text) if weights_text else None,
            baseline_path=path(opt("baseline")),
            max_drop=opt("max_drop"),
            strict_regressions=opt("strict_regressions"),
        )
