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


def is_lora(model) -> bool:
    return hasattr(model, "merge_and_unload")


def apply_lora(model: PreTrainedModel, lora: LoraSection, task_type: str = "CAUSAL_LM"):
    """``model`` wrapped by peft with trainable LoRA adapters (``task_type`` SEQ_CLS for a classifier head)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = lora.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    elif targets is not None:
        names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
        missing = [m for m in targets if m not in names]
        if missing:
            raise ConfigError(f"lora.target_modules: {missing} not found in {type(model).__name__}")
    config = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type=task_type
    )
    try:
        return get_peft_model(model, config)
    except ValueError as error:  # peft knows no default targets for this architecture
        raise ConfigError(f"lora.target_modules: {error}") from None


def plain_model(model) -> PreTrainedModel:
    """A standalone HF model: LoRA weights merged into a copy (the training model is untouched)."""
    if is_lora(model):
        return copy.deepcopy(model).merge_and_unload()
    return model
