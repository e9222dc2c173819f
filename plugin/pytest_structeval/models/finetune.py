"""A LoRA adapter trained on the CPU in about a minute: the fine-tune loop, small enough for tests.

``train_lora_adapter`` takes a few optimizer steps with ``peft`` on (task, reference answer)
pairs, each rendered through the model's own chat template as one user turn and one assistant
turn; the loss covers the assistant turn only (the answer and its end-of-turn token), so the
adapter learns to answer, not to repeat prompts. The saved adapter passes vLLM's rules
(``backends.adapter``): LoRA rank in vLLM's allowed set, no bias, no DoRA, nothing in
``modules_to_save``.

``reference_examples`` pairs the bundled open tasks with the bundled reference answers
(``tasksets/open150.answers.json``), leaving out the tasks you will evaluate on.

Seeded: ``torch.manual_seed`` fixes the LoRA initialisation and the order of the examples; on
one machine and thread count the same call gives the same adapter.
"""

from __future__ import annotations

import json
import random
from collections.abc import Collection, Sequence
from pathlib import Path

from ..tasks import BUNDLED_TASKS, Task, TaskSet, load_generations

BUNDLED_ANSWERS = BUNDLED_TASKS.with_name("open150.answers.json")
# Every projection of a Llama/Qwen decoder layer: the modules vLLM's LoRA supports there.
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def reference_examples(
    *,
    exclude: Collection[str] = (),
    tasks_path: Path = BUNDLED_TASKS,
    answers_path: Path = BUNDLED_ANSWERS,
) -> list[tuple[Task, str]]:
    """(task, reference answer) for every bundled task whose id is not in ``exclude``."""
    taskset = TaskSet.load(tasks_path)
    answers = load_generations(answers_path, taskset)
    return [(task, answers[task.task_id]) for task in taskset if task.task_id not in exclude]


def train_lora_adapter(
    model_dir: str | Path,
    target: str | Path,
    examples: Sequence[tuple[Task, str]],
    *,
    steps: int = 8,
    batch_size: int = 2,
    rank: int = 8,
    alpha: int = 16,
    learning_rate: float = 1e-3,
    max_length: int = 1024,
    seed: int = 0,
) -> Path:
    """Train a LoRA adapter for the model in ``model_dir`` and save it (PEFT format) in ``target``.

    ``steps`` AdamW steps of ``batch_size`` examples each, drawn in a seeded shuffled order
    (cycling when there are fewer examples than steps need). Examples longer than
    ``max_length`` tokens are left out (cutting one would train on half an answer); the
    ``train_log.json`` written beside the adapter lists the examples used and every step's loss."""
    # Heavy and optional imports stay inside: scoring and replay never need them.
    # torch, peft, transformers: the [smollm2] extra; only training needs them
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.float32, local_files_only=True
    )
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.0,
        target_modules=list(LORA_TARGETS),
        bias="none",
        use_dora=False,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, config)
    model.train()
    encoded, used = [], []
    for task, answer in examples:
        ids, labels = _encode(tokenizer, task, answer)
        if len(ids) <= max_length:
            encoded.append((ids, labels))
            used.append(task.task_id)
    if not encoded:
        raise ValueError(
            f"train_lora_adapter: none of the {len(examples)} examples fits in "
            f"max_length={max_length} tokens"
        )
    order = list(range(len(encoded)))
    random.Random(seed).shuffle(order)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=learning_rate
    )
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    losses: list[float] = []
    for step in range(steps):
        batch = [encoded[order[(step * batch_size + i) % len(order)]] for i in range(batch_size)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch])
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(loss.item(), 6))
    target = Path(target)
    model.save_pretrained(str(target), safe_serialization=True)
    log = {
        "base_model": str(model_dir),
        "examples": used,
        "steps": steps,
        "batch_size": batch_size,
        "rank": rank,
        "alpha": alpha,
        "learning_rate": learning_rate,
        "seed": seed,
        "losses": losses,
    }
    (target / "train_log.json").write_text(json.dumps(log, indent=2) + "\n", encoding="utf-8")
    return target


def _encode(tokenizer: object, task: Task, answer: str) -> tuple[list[int], list[int]]:
    """Token ids of the chat (user query, assistant answer) and labels masking the prompt."""
    user = task.chat_messages()
    prompt = tokenizer.apply_chat_template(user, add_generation_prompt=True, tokenize=False)  # type: ignore[attr-defined]
    full = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
        [*user, {"role": "assistant", "content": answer}], tokenize=False
    )
    if not full.startswith(prompt):
        raise ValueError(
            "the chat template renders the assistant turn in a way that does not extend the "
            "generation prompt; cannot mask the prompt out of the loss"
        )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]  # type: ignore[operator]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids
