"""AdamW and the warmup + cosine schedule shared by every trainer."""

from __future__ import annotations

import torch
from transformers import get_cosine_with_min_lr_schedule_with_warmup

from redraft.config import OptimSection
from redraft.errors import TrainingError


def build_optimizer(model: torch.nn.Module, optim: OptimSection, lr: float | None = None) -> torch.optim.Optimizer:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise TrainingError("nothing to train: every parameter is frozen")
    # Norm gains and biases (1-D) are not decayed.
    groups = [
        {"params": [p for _, p in trainable if p.ndim >= 2], "weight_decay": optim.weight_decay},
        {"params": [p for _, p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=lr or optim.lr, betas=(optim.beta1, optim.beta2), eps=optim.eps, fused=optim.fused or None
    )


def build_scheduler(optimizer: torch.optim.Optimizer, optim: OptimSection, total_steps: int):
    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, optim.warmup_steps, max(total_steps, 1), min_lr_rate=optim.min_lr_ratio
    )
