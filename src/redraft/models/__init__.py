"""Causal LMs from transformers model classes: tiny presets, local checkpoints, HF-format saves."""

from redraft.models.build import PRESETS, build_model, default_device, load_model, save_model

__all__ = ["PRESETS", "build_model", "default_device", "load_model", "save_model"]
