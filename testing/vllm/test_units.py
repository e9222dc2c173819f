"""Pure parts of the vLLM backend: no engine starts here."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_structeval.backends import quick_exit
from pytest_structeval.backends.adapter import AdapterError, validate_adapter
from pytest_structeval.backends.base import Generation
from pytest_structeval.backends.cache import GenerationCache, cache_key
from pytest_structeval.backends.engine import (
    default_ladder,
    failure_cause,
    is_memory_error,
    root_cause,
)
from pytest_structeval.backends.platform import vllm_environment
from pytest_structeval.backends.quick_exit import QUICK_EXIT
from pytest_structeval.backends.request import structured_outputs_spec
from pytest_structeval.backends.vllm_offline import VllmBackend
from pytest_structeval.models import BUILTIN_TINY, resolve_model
from pytest_structeval.models.tiny import build_tiny_model
from pytest_structeval.settings import Settings, parse_vllm_args
from pytest_structeval.tasks import Task

TASK = Task("t1", "Text to JSON", "Give me JSON.", "JSON")


def vllm_backend(**flat: object) -> VllmBackend:
    """An offline backend (never started) from flat settings (``Settings.of``)."""
    settings = Settings.of(**flat)
    return VllmBackend(settings.engine, settings.sampling)


# -- tiny model ---------------------------------------------------------------------------


def test_tiny_model_is_byte_identical_across_builds(tiny_model: Path, tmp_path: Path) -> None:
    other = build_tiny_model(tmp_path / "again")
    names = sorted(p.name for p in tiny_model.iterdir())
    assert names == sorted(p.name for p in other.iterdir())
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json"} <= set(
        names
    )
    for name in names:
        assert (tiny_model / name).read_bytes() == (other / name).read_bytes(), name


def test_tiny_model_config_and_chat_template(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    config = json.loads((tiny_model / "config.json").read_text())
    assert config["architectures"] == ["Qwen3ForCausalLM"]
    assert (config["num_hidden_layers"], config["head_dim"]) == (2, 64)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert config["vocab_size"] >= len(tokenizer)
    assert config["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    # Structured text packs well below one token per character: long prompts fit 4096.
    sample = '{"book": {"title": "Dune", "tags": ["sci-fi", "classic"], "year": 1965}}\n' * 20
    assert len(tokenizer.encode(sample)) < len(sample) / 1.8


def test_resolve_model_builds_builtin_once(tmp_path: Path, tiny_model: Path) -> None:
    assert resolve_model("/some/dir") == "/some/dir"
    assert resolve_model("Qwen/Qwen3-4B-Instruct-2507") == "Qwen/Qwen3-4B-Instruct-2507"
    path = Path(resolve_model(BUILTIN_TINY, root=tmp_path))
    assert path.parent == tmp_path / "models" and (path / "config.json").is_file()
    assert resolve_model(BUILTIN_TINY, root=tmp_path) == str(path)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tiny-")]  # no leftovers
    assert (path / "model.safetensors").read_bytes() == (
        tiny_model / "model.safetensors"
    ).read_bytes()
    with pytest.raises(ValueError, match="builtin:tiny"):
        resolve_model("builtin:huge")


# -- cache --------------------------------------------------------------------------------


def test_cache_round_trip_and_atomic_files(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path)
    identity = {"model": "m", "sampling_params": {"max_tokens": 5}}
    assert cache.get(identity, TASK) is None
    path = cache.put(identity, TASK, Generation("t1", '{"a": 1}', "stop"))
    assert cache.get(identity, TASK) == Generation("t1", '{"a": 1}', "stop", from_cache=True)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind
    # the same prompt under another task id hits, and reports the asking task's id
    renamed = replace(TASK, task_id="t9")
    assert cache.get(identity, renamed).task_id == "t9"  # type: ignore[union-attr]


def test_cache_key_covers_identity_prompt_and_format() -> None:
    identity = {"model": "m"}
    base = cache_key(identity, TASK)
    assert cache_key({"model": "m2"}, TASK) != base
    assert cache_key(identity, replace(TASK, query="Other.")) != base
    assert cache_key(identity, replace(TASK, output_type="YAML")) != base
    assert cache_key(identity, replace(TASK, task_id="other")) == base
    assert cache_key({"b": 1, "a": 2}, TASK) == cache_key({"a": 2, "b": 1}, TASK)


def test_cache_refresh_ignores_but_writes(tmp_path: Path) -> None:
    GenerationCache(tmp_path).put({}, TASK, Generation("t1", "old"))
    fresh = GenerationCache(tmp_path, refresh=True)
    assert fresh.get({}, TASK) is None
    fresh.put({}, TASK, Generation("t1", "new"))
    assert GenerationCache(tmp_path).get({}, TASK).text == "new"  # type: ignore[union-attr]


def test_cache_corrupt_entry_is_a_miss(tmp_path: Path) -> None:
    cache = GenerationCache(tmp_path)
    path = cache.put({}, TASK, Generation("t1", "x"))
    path.write_text("{truncated")
    assert cache.get({}, TASK) is None


# -- configuration, identity ----------------------------------------------------------------


def test_parse_vllm_args_coerces() -> None:
    assert parse_vllm_args(
        ["enforce_eager=true", "max_num_seqs=64", "x=0.5", "name=abc", "flag=True", 'd={"a": 1}']
    ) == {
        "enforce_eager": True,
        "max_num_seqs": 64,
        "x": 0.5,
        "name": "abc",
        "flag": True,
        "d": {"a": 1},
    }
    with pytest.raises(ValueError):
        parse_vllm_args(["novalue"])


def test_engine_and_sampling_args(tiny_model: Path) -> None:
    backend = vllm_backend(model=str(tiny_model), vllm_args={"enforce_eager": True})
    assert backend.engine_args == {
        "model": str(tiny_model),
        "dtype": "float32",
        "max_model_len": 4096,
        "seed": 0,
        "trust_remote_code": False,
        "enforce_eager": True,
    }
    assert backend.sampling_params == {"temperature": 0.0, "max_tokens": 4096}
    meta = backend.meta()
    assert meta["engine_args"] == backend.engine_args and meta["engine_built"] is False
    assert len(meta["chat_template_sha256"]) == 64
    assert backend.stats.engine_builds == 0


def test_cache_identity_changes_with_what_determines_output(
    tiny_model: Path, tmp_path: Path
) -> None:
    def identity(**changes: object) -> dict:
        return vllm_backend(model=str(tiny_model), **changes).cache_identity()

    base = identity()
    assert identity() == base
    assert identity(max_tokens=64) != base
    assert identity(temperature=0.7) != base
    # (max_tokens must leave the prompt room in the context: a usage error otherwise)
    assert identity(max_model_len=8192) != base
    assert identity(vllm_args={"enforce_eager": True}) != base
    assert identity(structured_outputs=True) != base
    # memory knobs only move the KV cache: same key, so fallback rungs share entries
    assert identity(gpu_memory_utilization=0.5) == base
    # the model is identified by its files, not its path
    copy = tmp_path / "copy"
    copy.mkdir()
    for f in tiny_model.iterdir():
        (copy / f.name).write_bytes(f.read_bytes())
    assert vllm_backend(model=str(copy)).cache_identity() == base
    config = json.loads((copy / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    assert vllm_backend(model=str(copy)).cache_identity() != base
    (copy / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")
    changed = vllm_backend(model=str(copy)).cache_identity()
    assert changed["chat_template_sha256"] != base["chat_template_sha256"]


def test_structured_outputs_spec() -> None:
    assert structured_outputs_spec("JSON") == {"json_object": True}
    assert "regex" in structured_outputs_spec("CSV")  # type: ignore[operator]
    assert structured_outputs_spec("YAML") is None


def test_ladder_and_error_classification() -> None:
    assert default_ladder(4096, None) == [
        {},
        {"gpu_memory_utilization": 0.8},
        {"gpu_memory_utilization": 0.95},
        {"max_model_len": 2048, "gpu_memory_utilization": 0.9},
    ]
    assert is_memory_error("ValueError: No available memory for the cache blocks.")
    assert is_memory_error("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert is_memory_error(
        "ValueError: Free memory on device cuda:0 (10.2/139.8 GiB) on startup is less than "
        "desired GPU memory utilization (0.9, 125.8 GiB)."
    )
    assert not is_memory_error("RuntimeError: Engine core initialization failed.")
    assert not is_memory_error("ModuleNotFoundError: No module named 'flashinfer'")
    assert not is_memory_error("TypeError: unexpected keyword argument 'foo'")


# What vLLM 0.32 printed when a worker of the engine core could not import a module (seen on
# this project's CPU machine), shortened; the parent only raised the wrapper at the end.
ENGINE_LOG = """\
(EngineCore pid=16760) INFO 12-01 08:49:20 [core.py:101] Initializing a V1 LLM engine
(VllmWorker-0 pid=17092) ERROR 12-01 08:51:01 [multiproc_executor.py:953] Traceback (most recent call last):
(VllmWorker-0 pid=17092) ERROR 12-01 08:51:01 [multiproc_executor.py:953]   File "x.py", line 1, in <module>
(VllmWorker-0 pid=17092) ERROR 12-01 08:51:01 [multiproc_executor.py:953] ModuleNotFoundError: No module named 'flashinfer'
(EngineCore pid=16760) ERROR 12-01 08:51:07 [core.py:1510] Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.
Process EngineCore:
Traceback (most recent call last):
Exception: WorkerProc initialization failed due to an exception in a background process. See stack trace for root cause.
"""


def test_the_root_cause_comes_from_the_engine_log() -> None:
    assert root_cause(ENGINE_LOG) == "ModuleNotFoundError: No module named 'flashinfer'"
    wrapper = RuntimeError("Engine core initialization failed. See root cause above.")
    assert failure_cause(wrapper, ENGINE_LOG) == "ModuleNotFoundError: No module named 'flashinfer'"
    # Without a log the wrapper is all there is; an exception of the parent is its own cause.
    assert failure_cause(wrapper, "") == (
        "RuntimeError: Engine core initialization failed. See root cause above."
    )
    assert failure_cause(ValueError("bad value\nmore"), ENGINE_LOG) == "ValueError: bad value"


# -- adapters -----------------------------------------------------------------------------


def make_adapter(path: Path, **config: object) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    base = {
        "peft_type": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "bias": "none",
        "use_dora": False,
        "target_modules": ["q_proj", "v_proj"],
    }
    (path / "adapter_config.json").write_text(json.dumps({**base, **config}))
    (path / "adapter_model.safetensors").write_bytes(b"")
    return path


def test_valid_adapter_picks_smallest_rank(tmp_path: Path) -> None:
    info = validate_adapter(str(make_adapter(tmp_path / "a", r=12)))
    assert (info.rank, info.max_lora_rank) == (12, 16)
    assert validate_adapter(str(make_adapter(tmp_path / "b", r=8))).max_lora_rank == 8


@pytest.mark.parametrize(
    ("config", "max_rank", "message"),
    [
        ({"use_dora": True}, None, "DoRA"),
        ({"bias": "all"}, None, "bias"),
        ({"r": 1024}, None, "exceeds vLLM's largest"),
        ({"r": 32}, 16, "exceeds max_lora_rank=16"),
        ({"r": 8}, 12, "not one of vLLM's"),
        ({"peft_type": "IA3"}, None, "not LoRA"),
        ({"modules_to_save": ["lm_head"]}, None, "modules_to_save"),
    ],
)
def test_bad_adapter_is_rejected(
    tmp_path: Path, config: dict, max_rank: int | None, message: str
) -> None:
    with pytest.raises(AdapterError, match=message):
        validate_adapter(str(make_adapter(tmp_path / "a", **config)), max_lora_rank=max_rank)


def test_missing_adapter_files(tmp_path: Path) -> None:
    with pytest.raises(AdapterError, match="no such adapter"):
        validate_adapter(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(AdapterError, match=r"adapter_config\.json"):
        validate_adapter(str(tmp_path / "empty"))
    adapter = make_adapter(tmp_path / "noweights")
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(AdapterError, match="adapter_model"):
        validate_adapter(str(adapter))


def test_bad_adapter_fails_before_any_engine(tiny_model: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "dora", use_dora=True)
    with pytest.raises(AdapterError, match="DoRA"):
        vllm_backend(model=str(tiny_model), adapter=str(adapter))


def test_adapter_enters_engine_args_and_identity(tiny_model: Path, tmp_path: Path) -> None:
    adapter = make_adapter(tmp_path / "a", r=8)
    backend = vllm_backend(model=str(tiny_model), adapter=str(adapter))
    assert (
        backend.engine_args | {"enable_lora": True, "max_lora_rank": 8, "max_loras": 1}
        == backend.engine_args
    )
    plain = vllm_backend(model=str(tiny_model))
    assert backend.cache_identity()["adapter"] != plain.cache_identity()["adapter"]
    (adapter / "adapter_model.safetensors").write_bytes(b"changed")
    again = vllm_backend(model=str(tiny_model), adapter=str(adapter))
    assert again.cache_identity() != backend.cache_identity()


def test_the_vllm_api_that_storing_as_generations_finish_relies_on() -> None:
    """``vllm_offline._tap_finished`` wraps the engine's ``step`` inside ``LLM.chat``: vLLM has
    no public per-request callback (``LLM.chat`` returns when the whole batch is done, its
    progress bar only gets counts). It relies on exactly these, which a vLLM upgrade could
    change; ``test_engine.py`` checks that the storing really happens inside the loop."""
    import vllm
    from vllm.engine.llm_engine import LLMEngine
    from vllm.outputs import RequestOutput

    assert "self.llm_engine.step()" in inspect.getsource(vllm.LLM._run_engine)
    assert callable(LLMEngine.step)
    fields = inspect.signature(RequestOutput.__init__).parameters
    assert {"request_id", "prompt_token_ids", "outputs", "finished"} <= set(fields)
    # Request ids are consecutive from the LLM's counter: how an output finds its task.
    assert "self.request_counter" in inspect.getsource(vllm.LLM)


# -- quick exit ---------------------------------------------------------------------------

# A parent and the child it spawns, each holding a reference cycle of objects that say when
# the garbage collector frees them, each calling the plugin as vLLM does (twice: vLLM may load
# its plugins more than once in a process).
_CYCLE_AT_EXIT = """
import multiprocessing
import sys

from pytest_structeval.backends import quick_exit


class Noisy:
    def __init__(self, owner):
        self.owner = owner

    def __del__(self):
        print(f"{self.owner} collected at exit", flush=True)


def hold_a_cycle(owner):
    quick_exit.install()
    quick_exit.install()
    a, b = Noisy(owner), Noisy(owner)
    a.other, b.other = b, a  # only the garbage collector frees these
    sys.modules["__main__"].kept = a


if __name__ == "__main__":
    child = multiprocessing.get_context("spawn").Process(target=hold_a_cycle, args=("child",))
    child.start()
    child.join()
    assert child.exitcode == 0, child.exitcode
    hold_a_cycle("parent")
"""


@pytest.mark.parametrize("value", ["1", "0", None])
def test_quick_exit_skips_the_last_collection_only_where_asked(
    value: str | None, tmp_path: Path
) -> None:
    script = tmp_path / "cycle.py"
    script.write_text(_CYCLE_AT_EXIT, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != QUICK_EXIT}
    if value is not None:
        env[QUICK_EXIT] = value
    done = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # The parent (the process that runs pytest, for an engine) always ends as it would.
    assert done.stdout.count("parent collected at exit") == 2
    if value == "1":  # vLLM's engine core and workers are such children
        assert "child collected at exit" not in done.stdout
        assert "Exception" not in done.stderr
    else:  # not asked: this package changes nothing in a process it did not start
        assert done.stdout.count("child collected at exit") == 2


def test_quick_exit_is_a_vllm_general_plugin_of_the_installed_package() -> None:
    from vllm.plugins import DEFAULT_PLUGINS_GROUP, load_plugins_by_group

    assert load_plugins_by_group(DEFAULT_PLUGINS_GROUP)["structeval-quick-exit"] is (
        quick_exit.install
    )


def test_engines_and_servers_this_package_starts_ask_for_the_quick_exit(monkeypatch) -> None:
    monkeypatch.delenv(QUICK_EXIT, raising=False)
    assert vllm_environment()[QUICK_EXIT] == "1"
    monkeypatch.setenv(QUICK_EXIT, "0")  # what the user set wins
    assert vllm_environment()[QUICK_EXIT] == "0"
