"""The settings of one evaluation: plain, picklable values, validated once.

``Settings`` is what the core (``core.Evaluation``) takes. A Python user builds it directly
(``Settings(model="builtin:tiny", max_tokens=64)``); the pytest layer (``options.py``) maps the
command line and ini keys onto it. Values stay str/int/float/bool/Path/tuple so that
pytest-xdist can ship them to its workers.

Defaults that differ from vLLM's are the official competition notebook's, so that a local score
estimates the leaderboard's: temperature 0 (vLLM: 1.0), max_tokens 4096 (vLLM: 16) and
max_model_len 4096 (vLLM: the model's whole context).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from .files import cache_root
from .scoring.extract import ScoringMode
from .tasks import BUNDLED_TASKS, FORMATS

DEFAULT_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
DEFAULT_OUT = "structeval-out"
SCORING_MODES: tuple[str, ...] = get_args(ScoringMode)
DTYPES = ("auto", "float32", "float16", "bfloat16", "half", "float")


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the setting and the value."""


def parse_format_weights(text: str) -> dict[str, float]:
    """``json=0.3,yaml=0.2,...`` -> weights per lower-case output format."""
    weights: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip().lower()
        if not sep or name not in FORMATS:
            raise SettingsError(
                f"format weights: expected FORMAT=WEIGHT with FORMAT in {list(FORMATS)}, "
                f"got {part!r}"
            )
        try:
            weights[name] = float(value)
        except ValueError:
            raise SettingsError(f"format weights: {name}={value!r} is not a number") from None
    _check_weights(weights)
    return weights


def _check_weights(weights: Mapping[str, float]) -> None:
    for name, weight in weights.items():
        if name not in FORMATS:
            raise SettingsError(f"format weights: unknown format {name!r}")
        if weight < 0:
            raise SettingsError(f"format weights: weight for {name} must be >= 0, got {weight}")


def parse_vllm_args(items: Iterable[str]) -> dict[str, object]:
    """``KEY=VALUE`` items: VALUE is read as JSON when it parses (``true``, ``64``,
    ``{"a": 1}``), Python-style ``True``/``False``/``None`` are accepted too, else it stays a
    string, so ``enforce_eager=true`` is a bool and ``max_num_seqs=64`` an int."""
    literals = {"True": True, "False": False, "None": None}
    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SettingsError(f"--vllm-arg expects KEY=VALUE, got {item!r}")
        if value in literals:
            parsed[key] = literals[value]
            continue
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def _path(value: str | Path | None) -> Path | None:
    return Path(value).expanduser().resolve() if value not in (None, "") else None


@dataclass(frozen=True)
class Settings:
    """One evaluation's settings. Paths are made absolute; everything is validated on creation.

    Where generations come from: ``generations`` (replay an inference.json, no engine),
    ``endpoint`` (an OpenAI-compatible vLLM server that is already running; ``model`` is the
    name it serves), ``serve`` (a ``vllm serve`` started for the session, with the engine
    arguments the in-process engine would get), else the in-process vLLM engine.
    """

    model: str = DEFAULT_MODEL
    tasks: Path = BUNDLED_TASKS
    generations: Path | None = None
    out_dir: Path = Path(DEFAULT_OUT)
    adapter: str | None = None
    # sampling and engine (see the module docstring for the defaults)
    max_tokens: int = 4096
    temperature: float = 0.0
    seed: int = 0
    max_model_len: int = 4096
    gpu_memory_utilization: float | None = None
    dtype: str = "auto"
    vllm_args: Mapping[str, object] = field(default_factory=dict)
    structured_outputs: bool = False
    trust_remote_code: bool = False
    # a vLLM server: one already running (endpoint) or one started for the session (serve)
    endpoint: str | None = None
    serve: bool = False
    serve_args: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    concurrency: int | None = None
    request_timeout: float = 600.0
    # the generation cache
    cache: bool = True
    refresh: bool = False
    cache_dir: Path = field(default_factory=cache_root)
    # scoring and gating
    scoring_mode: ScoringMode = "upstream"
    format_weights: Mapping[str, float] | None = None
    baseline: Path | None = None
    max_drop: float = 0.01
    strict_regressions: bool = False

    def __post_init__(self) -> None:
        for name in ("tasks", "out_dir", "cache_dir", "generations", "baseline"):
            object.__setattr__(self, name, _path(getattr(self, name)))
        object.__setattr__(self, "vllm_args", dict(self.vllm_args))
        if self.format_weights is not None:
            weights = {k.lower(): float(v) for k, v in self.format_weights.items()}
            _check_weights(weights)
            object.__setattr__(self, "format_weights", weights)
        for name in ("max_tokens", "max_model_len"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise SettingsError(f"{name} must be a positive integer, got {value!r}")
        if self.temperature < 0:
            raise SettingsError(f"temperature must be >= 0, got {self.temperature}")
        if self.max_drop < 0:
            raise SettingsError(f"max_drop must be >= 0, got {self.max_drop}")
        fraction = self.gpu_memory_utilization
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise SettingsError(f"gpu_memory_utilization must be in (0, 1], got {fraction}")
        if self.dtype not in DTYPES:
            raise SettingsError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.scoring_mode not in SCORING_MODES:
            raise SettingsError(
                f"scoring_mode must be one of {', '.join(SCORING_MODES)}, got {self.scoring_mode!r}"
            )
        if not self.model:
            raise SettingsError("model must not be empty")
        object.__setattr__(self, "serve_args", tuple(self.serve_args))
        sources = [
            name
            for name, given in (
                ("generations", self.generations is not None),
                ("endpoint", self.endpoint is not None),
                ("serve", self.serve),
            )
            if given
        ]
        if len(sources) > 1:
            raise SettingsError(f"choose one source of generations, not {' and '.join(sources)}")
        if self.concurrency is not None and self.concurrency < 1:
            raise SettingsError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.request_timeout <= 0:
            raise SettingsError(f"request_timeout must be > 0, got {self.request_timeout}")
        if self.serve_args and not self.serve:
            raise SettingsError("serve_args (--serve-arg) need serve (--serve)")

    @property
    def replay(self) -> bool:
        return self.generations is not None

    @property
    def local_engine(self) -> bool:
        """Whether an engine runs on this machine (in-process, or the session's server)."""
        return self.generations is None and self.endpoint is None
