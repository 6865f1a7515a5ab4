"""Layer freezing and LoRA (peft), and turning a trained model back into a plain HF model."""

from __future__ import annotations

import copy

from torch import nn
from transformers import PreTrainedModel

from redraft.config import FreezeSection, LoraSection
from redraft.errors import ConfigError


def transformer_blocks(model: PreTrainedModel) -> nn.ModuleList:
    """The stack of decoder blocks, whatever the architecture calls it."""
    count = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ConfigError(f"cannot find the {count} transformer blocks of {type(model).__name__}")


def apply_freeze(model: PreTrainedModel, freeze: FreezeSection) -> None:
    if freeze.embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    if freeze.layers:
        blocks = transformer_blocks(model)
        if freeze.layers > len(blocks):
            raise ConfigError(f"train.freeze.layers={freeze.layers} but the model has {len(blocks)} layers")
        for block in list(blocks)[: freeze.layers]:
            block.requires_grad_(False)


def apply_lora(model: PreTrainedModel, lora: LoraSection):
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [m for m in lora.target_modules if m not in names]
    if missing:
        raise ConfigError(f"train.lora.target_modules: {missing} not found in {type(model).__name__}")
    config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def plain_model(model) -> PreTrainedModel:
    """A standalone HF model: LoRA weights merged into a copy (the training model is untouched)."""
    if hasattr(model, "merge_and_unload"):
        return copy.deepcopy(model).merge_and_unload()
    return model
