"""Command-line options and ini keys, declared once in one group, mapped onto ``Settings``' sections.

pytest-xdist ships option values to its workers, so everything here stays str/int/float/bool.
Defaults and validation live in the sections (``settings.py``): an option's default is read from
its section's field, and an option's ``type`` only parses the text and asks the section to check
the value, so that argparse names the option at parse time. A bad value (on the command line or
in an ini file) becomes a ``pytest.UsageError``: exit code 4 and one ``ERROR:`` line.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .files import CACHE_ENV, cache_root
from .report.snapshots import SNAPSHOT_DIRNAME
from .settings import (
    DEFAULT_OUT,
    DTYPES,
    SCORING_MODES,
    Cache,
    Engine,
    Gate,
    Output,
    RequestPolicy,
    Sampling,
    Scoring,
    Serving,
    Settings,
    SettingsError,
    parse_format_weights,
    parse_vllm_args,
)
from .sweep import NamedRun, split_name, sweep_runs
from .tasks import BUNDLED_TASKS

# Any of these on the command line asks for an evaluation; without one the plugin adds no
# test to the session, so an ordinary `pytest` in a repository that has the plugin installed
# runs that repository's own tests only.
EVALUATION_OPTIONS = ("model", "tasks", "generations", "adapter", "baseline", "endpoint", "serve")


def _default(section: type, name: str) -> Any:
    """A field's default, as its section declares it (written once, there)."""
    return {f.name: f.default for f in dataclasses.fields(section)}[name]


class _Checked:
    """An argparse ``type``: parse the text, then let the section check the value.

    argparse names a type in its message (``invalid positive integer value: 'abc'``) by the
    callable's ``__name__``, so each carries a user-facing one; a value the section rejects is
    reported with the section's own message."""

    def __init__(self, name: str, parse: Callable[[str], Any], section: type, field: str) -> None:
        self.__name__ = name
        self.parse, self.section, self.field = parse, section, field

    def __call__(self, text: str) -> Any:
        value = self.parse(text)
        try:
            self.section(**{self.field: value})
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    def __repr__(self) -> str:
        return self.__name__


def _named(name: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """``parse`` under a user-facing name (see ``_Checked``)."""

    def named(text: str) -> Any:
        return parse(text)

    named.__name__ = name
    return named


def _key_value(text: str) -> str:
    parse_vllm_args([text])  # reject at parse time; keep the plain string for xdist
    return text


def _format_weights(text: str) -> str:
    parse_format_weights(text)  # reject at parse time; keep the plain string for xdist
    return text


def _rejecting(name: str, check: Callable[[str], str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            return check(text)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse


# dest -> the option's argparse default: an option whose value differs from it was given on the
# command line (what ``Settings.check_given`` needs to reject options a source ignores).
_OPTION_DEFAULTS: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("structeval", "StructEval-T evaluation (pytest-structeval)")

    def add(*names: str, **kwargs: Any) -> None:
        _OPTION_DEFAULTS[kwargs["dest"]] = kwargs.get(
            "default", False if kwargs.get("action") == "store_true" else None
        )
        group.addoption(*names, **kwargs)

    add(
        "--model",
        dest="structeval_model",
        metavar="[NAME=]ID_OR_PATH",
        action="append",
        default=None,
        help="HF model id, local model directory, or a built-in model: builtin:tiny (a random "
        "2-layer Qwen3, built locally) or builtin:smollm2 (SmolLM2-135M-Instruct) "
        f"(default: {_default(Engine, 'model')}; ini: structeval_model); repeat it to sweep "
        "checkpoints, one engine after another.",
    )
    add(
        "--tasks",
        dest="structeval_tasks",
        metavar="PATH",
        default=None,
        help="task file in public_150.json format (default: the bundled open150 set; "
        "ini: structeval_tasks).",
    )
    add(
        "--generations",
        dest="structeval_generations",
        metavar="PATH",
        default=None,
        help="replay: score an existing inference.json instead of generating (no engine).",
    )
    add(
        "--out",
        dest="structeval_out",
        metavar="DIR",
        default=None,
        help=f"where report.json, inference.json and report.html go (default: {DEFAULT_OUT}/; "
        "ini: structeval_out).",
    )
    add(
        "--adapter",
        dest="structeval_adapter",
        metavar="[NAME=]PATH_OR_ID",
        action="append",
        default=None,
        help="evaluate a LoRA adapter through vLLM's LoRA support, without merging; repeat it "
        "to sweep adapters on one engine (with --endpoint: a served LoRA module name).",
    )
    add(
        "--max-tokens",
        dest="structeval_max_tokens",
        metavar="N",
        type=_Checked("positive integer", int, Sampling, "max_tokens"),
        default=_default(Sampling, "max_tokens"),
        help=f"tokens to generate per task (default: {_default(Sampling, 'max_tokens')}, as the "
        "official "
        "notebook).",
    )
    add(
        "--temperature",
        dest="structeval_temperature",
        metavar="T",
        type=_Checked("non-negative number", float, Sampling, "temperature"),
        default=_default(Sampling, "temperature"),
        help=f"sampling temperature (default: {_default(Sampling, 'temperature'):g}, greedy, as "
        "the official "
        "notebook).",
    )
    add(
        "--seed",
        dest="structeval_seed",
        metavar="N",
        type=_named("integer", int),
        default=_default(Sampling, "seed"),
        help=f"sampling seed given to vLLM (default: {_default(Sampling, 'seed')}).",
    )
    add(
        "--max-model-len",
        dest="structeval_max_model_len",
        metavar="N",
        type=_Checked("positive integer", int, Engine, "max_model_len"),
        default=_default(Engine, "max_model_len"),
        help=f"engine context length (default: {_default(Engine, 'max_model_len')}, as the official "
        "notebook).",
    )
    add(
        "--gpu-memory-utilization",
        dest="structeval_gpu_memory_utilization",
        metavar="F",
        type=_Checked("fraction", float, Engine, "gpu_memory_utilization"),
        default=_default(Engine, "gpu_memory_utilization"),
        help="fraction of device memory for vLLM (default: vLLM's own default).",
    )
    add(
        "--dtype",
        dest="structeval_dtype",
        metavar="DTYPE",
        default=_default(Engine, "dtype"),
        choices=DTYPES,
        help=f"model dtype (default: {_default(Engine, 'dtype')}; float32 on CPU, where vLLM's bf16 kernels "
        "crash).",
    )
    add(
        "--vllm-arg",
        dest="structeval_vllm_args",
        metavar="KEY=VALUE",
        action="append",
        type=_rejecting("KEY=VALUE", _key_value),
        default=[],
        help="extra keyword argument for vllm.LLM, by its Python name (max_num_seqs=64, "
        "enforce_eager=true), repeatable; VALUE is parsed as JSON if it can be. For --serve, "
        "use --serve-arg.",
    )
    add(
        "--endpoint",
        dest="structeval_endpoint",
        metavar="URL",
        default=None,
        help="generate through a running OpenAI-compatible vLLM server: its /v1 base URL "
        "(--model names the served model).",
    )
    add(
        "--serve",
        dest="structeval_serve",
        action="store_true",
        help="start a vllm serve for the session on 127.0.0.1 and generate through it "
        "(data parallel over the visible GPUs; one server for all xdist workers).",
    )
    add(
        "--serve-arg",
        dest="structeval_serve_args",
        metavar="ARG",
        action="append",
        default=[],
        help="extra `vllm serve` command-line flag for the --serve server, as the CLI spells it "
        "(--serve-arg=--max-num-seqs=64), repeatable; needs --serve.",
    )
    add(
        "--api-key",
        dest="structeval_api_key",
        metavar="KEY",
        default=None,
        help="API key of the --endpoint server (default: $VLLM_API_KEY); needs --endpoint.",
    )
    add(
        "--concurrency",
        dest="structeval_concurrency",
        metavar="N",
        type=_Checked("positive integer", int, RequestPolicy, "concurrency"),
        default=_default(RequestPolicy, "concurrency"),
        help="requests in flight to a server (default: 1024 per replica, vLLM's largest "
        "default batch, so continuous batching stays full).",
    )
    add(
        "--request-timeout",
        dest="structeval_request_timeout",
        metavar="S",
        type=_Checked("positive number", float, RequestPolicy, "request_timeout"),
        default=_default(RequestPolicy, "request_timeout"),
        help="seconds one request to a server may take, queueing included "
        f"(default: {_default(RequestPolicy, 'request_timeout'):g}).",
    )
    add(
        "--structured-outputs",
        dest="structeval_structured_outputs",
        action="store_true",
        help="constrain decoding to the task's output format (vLLM structured outputs).",
    )
    add(
        "--trust-remote-code",
        dest="structeval_trust_remote_code",
        action="store_true",
        help="allow model repositories to run their own code (off by default).",
    )
    add(
        "--no-cache",
        dest="structeval_no_cache",
        action="store_true",
        help="neither read nor write the generation cache.",
    )
    add(
        "--refresh",
        dest="structeval_refresh",
        action="store_true",
        help="regenerate every selected task and overwrite its cache entry.",
    )
    add(
        "--cache-dir",
        dest="structeval_cache_dir",
        metavar="DIR",
        default=None,
        help=f"generation cache (default: ${CACHE_ENV}, else ~/.cache/pytest-structeval).",
    )
    add(
        "--scoring-mode",
        dest="structeval_scoring_mode",
        choices=SCORING_MODES,
        default=_default(Scoring, "mode"),
        help="upstream: score as StructEval does (default); strict: competitor-style checks.",
    )
    add(
        "--format-weights",
        dest="structeval_format_weights",
        metavar="FMT=W,...",
        type=_rejecting("FORMAT=WEIGHT list", _format_weights),
        default=None,
        help="weights of the per-format means in the competition estimate "
        "(ini: structeval_format_weights; default: the scorer's).",
    )
    add(
        "--baseline",
        dest="structeval_baseline",
        metavar="[NAME=]PATH",
        action="append",
        default=None,
        help="an earlier run's report.json, or its --out directory: fail tasks that regressed "
        "from 1.0, and the session when the overall score drops (--max-drop); in a sweep, every "
        "run's baseline, or NAME=PATH for the run NAME.",
    )
    add(
        "--max-drop",
        dest="structeval_max_drop",
        metavar="D",
        type=_Checked("non-negative number", float, Gate, "max_drop"),
        default=_default(Gate, "max_drop"),
        help="with --baseline, fail the session when the overall score drops "
        f"by more than D, in [0, 1] (default: {_default(Gate, 'max_drop'):g}).",
    )
    add(
        "--strict-regressions",
        dest="structeval_strict_regressions",
        action="store_true",
        help="with --baseline, fail (not xfail) tasks that were imperfect and got worse.",
    )
    add(
        "--snapshot-dir",
        dest="structeval_snapshot_dir",
        metavar="DIR",
        default=None,
        help=f"where output snapshots are kept (default: <rootdir>/{SNAPSHOT_DIRNAME}; "
        "ini: structeval_snapshot_dir).",
    )
    add(
        "--no-snapshots",
        dest="structeval_no_snapshots",
        action="store_true",
        help="neither compare outputs with snapshots nor write any (ini: structeval_snapshots "
        "= false).",
    )
    parser.addini("structeval_model", "default for --model", default=_default(Engine, "model"))
    parser.addini("structeval_tasks", "default for --tasks", default="")
    parser.addini("structeval_out", "default for --out", default=DEFAULT_OUT)
    parser.addini("structeval_format_weights", "default for --format-weights", default="")
    parser.addini("structeval_snapshot_dir", "default for --snapshot-dir", default="")
    parser.addini(
        "structeval_snapshots", "compare outputs with snapshots (default: true)", type="bool",
        default=True,
    )


@dataclass(frozen=True)
class Options:
    """What one pytest session asked for: the evaluation's ``Settings`` and whether an
    evaluation option was given on the command line (see EVALUATION_OPTIONS)."""

    settings: Settings
    requested: bool
    # Several --model or --adapter values: the sweep's runs (``settings`` is the first's);
    # () for one run.
    runs: tuple[NamedRun, ...] = ()


def read_options(config: pytest.Config) -> Options:
    """Map the command line and ini keys onto the sections; a bad value is a UsageError."""

    def opt(name: str):
        return config.getoption(f"structeval_{name}")

    root = config.invocation_params.dir

    def path(value: str | None) -> Path | None:
        return (root / value).resolve() if value else None

    models, adapters, baselines = opt("model") or [], opt("adapter") or [], opt("baseline") or []
    one_adapter = split_name(adapters[0])[1] if adapters else None
    one_baseline = split_name(baselines[-1])[1] if len(baselines) == 1 else None
    if baselines and not one_baseline:
        one_baseline = next((b for b in baselines if split_name(b)[0] is None), baselines[-1])
    weights_text = opt("format_weights") or config.getini("structeval_format_weights") or ""
    snapshots = path(opt("snapshot_dir") or config.getini("structeval_snapshot_dir"))
    snapshots_on = not opt("no_snapshots") and config.getini("structeval_snapshots")
    try:
        settings = Settings(
            tasks=path(opt("tasks") or config.getini("structeval_tasks")) or BUNDLED_TASKS,
            generations=path(opt("generations")),
            sampling=Sampling(
                max_tokens=opt("max_tokens"), temperature=opt("temperature"), seed=opt("seed")
            ),
            engine=Engine(
                model=(split_name(models[0])[1] if models else None)
                or config.getini("structeval_model"),
                adapter=one_adapter,
                max_model_len=opt("max_model_len"),
                gpu_memory_utilization=opt("gpu_memory_utilization"),
                dtype=opt("dtype"),
                vllm_args=parse_vllm_args(opt("vllm_args")),
                structured_outputs=opt("structured_outputs"),
                trust_remote_code=opt("trust_remote_code"),
            ),
            serving=Serving(
                endpoint=opt("endpoint"),
                serve=opt("serve"),
                serve_args=tuple(opt("serve_args")),
                api_key=opt("api_key"),
                policy=RequestPolicy(
                    concurrency=opt("concurrency"), request_timeout=opt("request_timeout")
                ),
            ),
            cache=Cache(
                enabled=not opt("no_cache"),
                refresh=opt("refresh"),
                root=path(opt("cache_dir")) or cache_root(),
            ),
            scoring=Scoring(
                mode=opt("scoring_mode"),
                format_weights=parse_format_weights(weights_text) if weights_text else None,
            ),
            gate=Gate(
                baseline=path(one_baseline),
                max_drop=opt("max_drop"),
                strict_regressions=opt("strict_regressions"),
            ),
            output=Output(
                out_dir=path(opt("out") or config.getini("structeval_out")) or root / DEFAULT_OUT,
                snapshot_dir=(snapshots or config.rootpath / SNAPSHOT_DIRNAME)
                if snapshots_on
                else None,
            ),
        )
        settings.check_given(given_options(config))
        runs = sweep_runs(
            settings,
            models=models,
            adapters=adapters,
            baselines=[_rooted(b, root) for b in baselines],
        )
    except SettingsError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Options(
        runs=runs,
        settings=runs[0].settings if runs else settings,
        requested=any(opt(name) not in (None, False) for name in EVALUATION_OPTIONS),
    )


def given_options(config: pytest.Config) -> set[str]:
    """The settings given on the command line (their values differ from the options'
    defaults), by their ``Settings`` field names."""
    given = set()
    for dest, default in _OPTION_DEFAULTS.items():
        value = config.getoption(dest)
        if value != default and value not in (None, [], ()):
            given.add(_FIELD_OF.get(dest, dest.removeprefix("structeval_")))
    return given


# Option destinations whose settings field has another name.
_FIELD_OF = {
    "structeval_vllm_args": "vllm_args",
    "structeval_serve_args": "serve_args",
    "structeval_scoring_mode": "mode",
    "structeval_out": "out_dir",
}


def _rooted(text: str, root: Path) -> str:
    """A ``[NAME=]PATH`` baseline with PATH made absolute from the invocation directory."""
    name, value = split_name(text)
    absolute = (root / value).resolve()
    return f"{name}={absolute}" if name is not None else str(absolute)
