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


def masked_kl_to_reference_sum(logits: torch.Tensor, ref_logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sum over the positions ``mask`` marks of KL(π_ref ‖ π_θ) over the whole vocabulary.

    Same shift as the LM loss: ``mask[:, t + 1]`` selects the distribution predicting token t+1.
    The exact KL over the vocabulary (not a sampled-token estimate) is cheap for an SFT batch and
    matches the reference's whole distribution, so a token the data never shows is held in place too.
    """
    logp = F.log_softmax(logits[:, :-1].float(), dim=-1)
    ref_logp = F.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    per_position = (ref_logp.exp() * (ref_logp - logp)).sum(dim=-1)
    return (per_position * mask[:, 1:]).sum()
