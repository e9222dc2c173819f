"""A tiny random Qwen3 model, built locally and deterministically, for tests and the demo.

``--model=builtin:tiny`` selects it (``models.resolve_model``). It is a real Hugging Face model directory (safetensors
weights, ``config.json``, ``generation_config.json``, a fast tokenizer with a chat template), so
vLLM loads it through exactly the path it uses for Qwen3-4B-Instruct-2507: ``Qwen3ForCausalLM``,
the tokenizer's chat template, ``<|im_end|>`` as end of turn. Its weights are random: it
produces junk, quickly, which is what tests of the pipeline need.

Determinism: the tokenizer is a byte-level BPE trained by ``tokenizers`` on a fixed corpus
built below from a seeded ``random.Random``; the weights come from ``torch.manual_seed``. Two
builds with the same transformers/tokenizers/torch versions give byte-identical files, so the
model fingerprint (and with it the generation cache key) is stable across machines.

Sizes: hidden 128, 2 layers, 2 query heads and 1 KV head of head_dim 64 (a head size every
vLLM attention backend, CPU included, supports), vocabulary ~2k byte-level BPE tokens, which
packs the StructEval prompts (up to ~3k characters) into well under 2k tokens, so they fit
max_model_len 4096 with room to generate.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

# Bump when the recipe changes, so a cached build from an older recipe is not reused.
RECIPE_VERSION = 1

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TOKENIZER_VOCAB = 2048
# Qwen's template reduced to what the plugin sends (system and user turns, generation prompt).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

_WORDS = (
    "the a an of to and in for with as is are be by on from that this each every its their "
    "please generate create produce output return write convert transform following given "
    "data document record records item items list entry entries field fields value values "
    "key keys name names id title description type types version date time year month day "
    "user users person people customer order orders product products price quantity total "
    "address city country street zip email phone status active enabled true false null none "
    "config configuration settings server database host port timeout retries path url "
    "project team member members role roles task tasks event events location start end "
    "book books author authors library student students course courses grade score "
    "employee employees department salary company inventory category tags notes comment "
    "must should include contain containing only without any extra text code block format "
    "structure nested array object table section attribute element root child children "
    "header headers row rows column columns comma separated quoted escape string number "
    "JSON YAML TOML XML CSV schema valid syntax indentation spaces brackets "
    "sensor reading temperature humidity pressure unit device network node edge graph "
    "recipe ingredient ingredients step steps amount weather forecast flight airport "
    "hotel room booking guest game player players level points movie rating genre "
    "feature features requirement requirements metadata summary details information "
    "Generate Create Convert Output Return Please Ensure Make Use The Each Your"
).split()

_SENTENCES = (
    "Please output only the {fmt} code, without any explanation or extra text.",
    "Convert the following {src} data into {fmt} format.",
    "Generate a {fmt} document that describes a {thing} with the fields listed below.",
    "Make sure the {fmt} is valid and keeps the original structure.",
    "Each {thing} must include a name, an id, a list of tags and a nested {other} object.",
    "Use the exact key names given in the task and keep nested arrays as arrays.",
    "Return the result as {fmt}. Do not wrap it in markdown code fences.",
    "The {thing} has {n} entries; every entry has a {other} field and a status.",
)


def _corpus() -> list[str]:
    """Text the tokenizer is trained on: instruction prose plus samples of every format.

    Generated from a fixed seed, never from benchmark data, so it is fixed and ours."""
    rng = random.Random(20251128)
    fmts = ("JSON", "YAML", "TOML", "XML", "CSV", "Text")
    lines: list[str] = []
    for _ in range(300):
        template = rng.choice(_SENTENCES)
        lines.append(
            template.format(
                fmt=rng.choice(fmts),
                src=rng.choice(fmts),
                thing=rng.choice(_WORDS),
                other=rng.choice(_WORDS),
                n=rng.randint(1, 99),
            )
        )
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(rng.randint(6, 18))) + ".")
    for _ in range(200):
        keys = rng.sample(_WORDS, 4)
        vals: list[object] = [
            rng.randint(0, 9999),
            round(rng.random() * 100, 2),
            rng.choice(_WORDS),
            rng.choice((True, False)),
        ]
        record = dict(zip(keys, vals, strict=False))
        nested = {rng.choice(_WORDS): [record, {k: v for k, v in record.items() if k != keys[0]}]}
        lines.append(json.dumps(nested, indent=2))
        lines.append(json.dumps(record))
        lines.append("\n".join(f"{k}: {json.dumps(v)}" for k, v in record.items()))
        lines.append(
            f"{keys[0]}:\n" + "\n".join(f"  - {k}: {json.dumps(v)}" for k, v in record.items())
        )
        lines.append(
            f"[{keys[1]}]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in record.items())
        )
        lines.append(f'[[{keys[2]}.{keys[3]}]]\n{keys[0]} = "{rng.choice(_WORDS)}"')
        xml = "".join(f"<{k}>{v}</{k}>" for k, v in record.items())
        lines.append(
            f'<?xml version="1.0" encoding="UTF-8"?>\n<{keys[0]} id="{rng.randint(1, 99)}">\n  {xml}\n</{keys[0]}>'
        )
        lines.append(",".join(keys) + "\n" + ",".join(str(v) for v in vals) + "\n")
        lines.append(f"<code>{json.dumps(record)}</code>\\n```json\n{json.dumps(record)}\n```")
    return lines


def _build_tokenizer(target: Path) -> int:
    # Heavy and optional imports stay inside the builder: scoring never needs them.
    # tokenizers, transformers, torch: heavy, and only building the model needs them
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(target)
    return len(fast)


def _build_model(target: Path, vocab: int, eos_id: int, pad_id: int) -> None:
    import torch  # as above: only the build
    from transformers import GenerationConfig, Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=(vocab + 63) // 64 * 64,  # >= the tokenizer, padded as real checkpoints are
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
        bos_token_id=None,
        dtype="float32",
    )
    config.architectures = ["Qwen3ForCausalLM"]
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config).to(torch.float32)
    model.save_pretrained(target, safe_serialization=True)
    GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id).save_pretrained(target)


def build_tiny_model(target: Path) -> Path:
    """Write the tiny model into ``target`` (created if needed) and return it.

    Deterministic: the same library versions give byte-identical files."""
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    vocab = _build_tokenizer(target)
    from transformers import AutoTokenizer  # as above: only the build

    tokenizer = AutoTokenizer.from_pretrained(target)
    _build_model(
        target,
        vocab,
        eos_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    return target
