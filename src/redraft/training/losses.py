"""Token-level language-modelling loss (pure tensor math)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_lm_loss_sum(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Sum over target tokens of next-token cross-entropy; position t predicts token t+1.

    Returning the sum lets gradient accumulation divide by the token count of the whole step,
    so every token weighs the same however the step is split into micro-batches.
    """
    targets = input_ids[:, 1:]
    per_token = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), reduction="none")
    return (per_token * loss_mask[:, 1:].flatten()).sum()
