"""Command-line options and ini keys, declared once in one group, mapped onto ``Settings``.

pytest-xdist ships option values to its workers, so everything here stays str/int/float/bool.
Validation lives in ``settings.py``; this module only parses what pytest hands over and turns
a bad value (on the command line or in an ini file) into a ``pytest.UsageError``: exit code 4
and one ``ERROR:`` line.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from .files import CACHE_ENV, cache_root
from .report.snapshots import SNAPSHOT_DIRNAME
from .settings import (
    DEFAULT_MODEL,
    DEFAULT_OUT,
    DTYPES,
    SCORING_MODES,
    Settings,
    SettingsError,
    parse_format_weights,
    parse_vllm_args,
)
from .tasks import BUNDLED_TASKS

# Any of these on the command line asks for an evaluation; without one the plugin adds no
# test to the session, so an ordinary `pytest` in a repository that has the plugin installed
# runs that repository's own tests only.
EVALUATION_OPTIONS = ("model", "tasks", "generations", "adapter", "baseline", "endpoint", "serve")


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


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _key_value(text: str) -> str:
    if "=" not in text or not text.split("=", 1)[0].strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return text


def _format_weights(text: str) -> str:
    try:
        parse_format_weights(text)  # reject at parse time; keep the plain string for xdist
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


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
        help="task file in public_150.json format (default: the bundled open150 set; "
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
        default=Settings.max_tokens,
        help=f"tokens to generate per task (default: {Settings.max_tokens}, as the official "
        "notebook).",
    )
    group.addoption(
        "--temperature",
        dest="structeval_temperature",
        metavar="T",
        type=_non_negative_float,
        default=Settings.temperature,
        help=f"sampling temperature (default: {Settings.temperature:g}, greedy, as the official "
        "notebook).",
    )
    group.addoption(
        "--seed",
        dest="structeval_seed",
        metavar="N",
        type=int,
        default=Settings.seed,
        help=f"sampling seed given to vLLM (default: {Settings.seed}).",
    )
    group.addoption(
        "--max-model-len",
        dest="structeval_max_model_len",
        metavar="N",
        type=_positive_int,
        default=Settings.max_model_len,
        help=f"engine context length (default: {Settings.max_model_len}, as the official "
        "notebook).",
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
        default=Settings.dtype,
        choices=DTYPES,
        help=f"model dtype (default: {Settings.dtype}; float32 on CPU, where vLLM's bf16 kernels "
        "crash).",
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
        "--endpoint",
        dest="structeval_endpoint",
        metavar="URL",
        default=None,
        help="generate through a running OpenAI-compatible vLLM server: its /v1 base URL "
        "(--model names the served model).",
    )
    group.addoption(
        "--serve",
        dest="structeval_serve",
        action="store_true",
        help="start a vllm serve for the session on 127.0.0.1 and generate through it "
        "(data parallel over the visible GPUs; one server for all xdist workers).",
    )
    group.addoption(
        "--serve-arg",
        dest="structeval_serve_args",
        metavar="ARG",
        action="append",
        default=[],
        help="extra argument for the --serve server, repeatable (e.g. --serve-arg=--max-num-seqs=256).",
    )
    group.addoption(
        "--api-key",
        dest="structeval_api_key",
        metavar="KEY",
        default=None,
        help="API key of the --endpoint server (default: $VLLM_API_KEY).",
    )
    group.addoption(
        "--concurrency",
        dest="structeval_concurrency",
        metavar="N",
        type=_positive_int,
        default=None,
        help="requests in flight to a server (default: 1024 per replica, vLLM's largest "
        "default batch, so continuous batching stays full).",
    )
    group.addoption(
        "--request-timeout",
        dest="structeval_request_timeout",
        metavar="S",
        type=_positive_float,
        default=Settings.request_timeout,
        help="seconds one request to a server may take, queueing included "
        f"(default: {Settings.request_timeout:g}).",
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
        help=f"generation cache (default: ${CACHE_ENV}, else ~/.cache/pytest-structeval).",
    )
    group.addoption(
        "--scoring-mode",
        dest="structeval_scoring_mode",
        choices=SCORING_MODES,
        default=Settings.scoring_mode,
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
        default=Settings.max_drop,
        help="with --baseline, fail the session when the overall score drops "
        f"by more than D (default: {Settings.max_drop:g}).",
    )
    group.addoption(
        "--strict-regressions",
        dest="structeval_strict_regressions",
        action="store_true",
        help="with --baseline, fail (not xfail) tasks that were imperfect and got worse.",
    )
    group.addoption(
        "--snapshot-dir",
        dest="structeval_snapshot_dir",
        metavar="DIR",
        default=None,
        help=f"where output snapshots are kept (default: <rootdir>/{SNAPSHOT_DIRNAME}; "
        "ini: structeval_snapshot_dir).",
    )
    parser.addini("structeval_model", "default for --model", default=DEFAULT_MODEL)
    parser.addini("structeval_tasks", "default for --tasks", default="")
    parser.addini("structeval_out", "default for --out", default=DEFAULT_OUT)
    parser.addini("structeval_format_weights", "default for --format-weights", default="")
    parser.addini("structeval_snapshot_dir", "default for --snapshot-dir", default="")


@dataclass(frozen=True)
class Options:
    """What one pytest session asked for: the evaluation's ``Settings`` plus what only the
    pytest layer uses."""

    settings: Settings
    # An evaluation option was given on the command line (see EVALUATION_OPTIONS).
    requested: bool
    snapshot_dir: Path


def read_options(config: pytest.Config) -> Options:
    """Map the command line and ini keys onto ``Options``; a bad value is a UsageError."""

    def opt(name: str):
        return config.getoption(f"structeval_{name}")

    root = config.invocation_params.dir

    def path(value: str | None) -> Path | None:
        return (root / value).resolve() if value else None

    weights_text = opt("format_weights") or config.getini("structeval_format_weights") or ""
    snapshots = path(opt("snapshot_dir") or config.getini("structeval_snapshot_dir"))
    try:
        settings = Settings(
            model=opt("model") or config.getini("structeval_model"),
            tasks=path(opt("tasks") or config.getini("structeval_tasks")) or BUNDLED_TASKS,
            generations=path(opt("generations")),
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
            endpoint=opt("endpoint"),
            serve=opt("serve"),
            serve_args=tuple(opt("serve_args")),
            api_key=opt("api_key"),
            concurrency=opt("concurrency"),
            request_timeout=opt("request_timeout"),
            cache=not opt("no_cache"),
            refresh=opt("refresh"),
            cache_dir=path(opt("cache_dir")) or cache_root(),
            scoring_mode=opt("scoring_mode"),
            format_weights=parse_format_weights(weights_text) if weights_text else None,
            baseline=path(opt("baseline")),
            max_drop=opt("max_drop"),
            strict_regressions=opt("strict_regressions"),
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Options(
        settings=settings,
        requested=any(opt(name) not in (None, False) for name in EVALUATION_OPTIONS),
        snapshot_dir=snapshots or config.rootpath / SNAPSHOT_DIRNAME,
    )
