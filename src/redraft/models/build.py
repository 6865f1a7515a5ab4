"""Build tiny Llama/GPT-2 models, load local HF checkpoints, save as plain HF checkpoints."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)

from redraft.config import ModelSection
from redraft.errors import ConfigError, RedraftError
from redraft.fsutil import atomic_directory
from redraft.models.adapters import is_lora, plain_model
from redraft.text.hub import resolve_pretrained

# layers, hidden size, attention heads. Sized for a 2-core CPU.
PRESETS: dict[str, tuple[int, int, int]] = {
    "micro": (1, 64, 2),
    "tiny": (2, 128, 4),
    "small": (4, 256, 4),
    "base": (6, 384, 6),
}


def llama_mlp_width(hidden: int) -> int:
    """LLaMA's gated-MLP width: 8/3 of the hidden size, rounded up to a multiple of 64."""
    return -(-8 * hidden // 3 // 64) * 64


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def torch_dtype(name: str | torch.dtype | None) -> torch.dtype:
    """``model.dtype``'s names (fp32, bf16; float32 and bfloat16 also) as torch dtypes; None is fp32."""
    if name is None:
        return torch.float32
    if isinstance(name, torch.dtype):
        return name
    aliases = {"float32": "fp32", "bfloat16": "bf16"}
    if aliases.get(name, name) not in DTYPES:
        raise ConfigError(f"model.dtype: unknown dtype {name!r}; choose one of {sorted(DTYPES)}")
    return DTYPES[aliases.get(name, name)]


def build_model(cfg: ModelSection, tokenizer) -> PreTrainedModel:
    """A fresh model from a preset, or ``cfg.path`` loaded when set (weights in ``cfg.dtype``)."""
    if cfg.path:
        return load_model(cfg.path, cfg.dtype)
    return _fresh_model(cfg, tokenizer).to(torch_dtype(cfg.dtype))


def _fresh_model(cfg: ModelSection, tokenizer) -> PreTrainedModel:
    if cfg.preset not in PRESETS:
        raise ConfigError(f"model.preset: unknown preset {cfg.preset!r}; choose one of {sorted(PRESETS)}")
    layers, hidden, heads = PRESETS[cfg.preset]
    layers, hidden, heads = cfg.layers or layers, cfg.hidden or hidden, cfg.heads or heads
    if hidden % heads:
        raise ConfigError(f"model: hidden ({hidden}) must be divisible by heads ({heads})")
    ids = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if cfg.arch == "llama":
        config = LlamaConfig(
            hidden_size=hidden,
            intermediate_size=llama_mlp_width(hidden),
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            max_position_embeddings=cfg.max_positions,
            tie_word_embeddings=True,
            attn_implementation="sdpa",
            **ids,
        )
        return LlamaForCausalLM(config)
    config = GPT2Config(
        n_embd=hidden,
        n_layer=layers,
        n_head=heads,
        n_positions=cfg.max_positions,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        attn_implementation="sdpa",
        **ids,
    )
    return GPT2LMHeadModel(config)


def default_device() -> torch.device:
    """Where a model that no trainer places (evaluation, sampling) runs: the GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def native_bf16() -> bool:
    """Whether this machine computes bfloat16 matmuls natively: a CUDA GPU with bf16, or a CPU with AVX512-BF16
    or AMX. Elsewhere bf16 is emulated, many times slower than fp32."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # torch names these checks privately; a torch without them is taken to lack the instructions.
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, check, lambda: False)() for check in checks)


def uses_bf16(mixed_precision: str) -> bool:
    """Whether a trainer's ``mixed_precision`` key (no, bf16, auto) means bf16 autocast on this machine: ``auto``
    where :func:`native_bf16`."""
    return mixed_precision == "bf16" or (mixed_precision == "auto" and native_bf16())


def load_model(path: str | Path, dtype: str | torch.dtype | None = None) -> PreTrainedModel:
    """Any HF causal-LM checkpoint: a local folder, or a Hub id found in the local cache (downloaded
    when online). Weights load in ``dtype`` (fp32 or bf16; default fp32, whatever the checkpoint's)."""
    path = resolve_pretrained(path)
    if not (path / "config.json").is_file():
        raise RedraftError(f"no HF checkpoint at {path} (config.json missing)")
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype(dtype))


ADAPTER_DIR = "adapter"


def save_model(model: PreTrainedModel, tokenizer, path: str | Path) -> None:
    """Write model (safetensors) and tokenizer as one HF checkpoint folder, atomically. A LoRA model is written
    with its adapters merged, and its adapters alone in ``adapter/`` (for ``PeftModel.from_pretrained(base, …)``)."""
    with atomic_directory(path) as staging:
        plain_model(model).save_pretrained(staging, safe_serialization=True)
        if is_lora(model):
            model.save_pretrained(staging / ADAPTER_DIR)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
