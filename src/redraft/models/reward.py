"""Reward models: a causal LM turned into a scorer of ``prompt ‖ completion ‖ EOS``.

Two heads:

- ``classifier``: transformers' ``AutoModelForSequenceClassification`` for the policy's
  architecture (``LlamaForSequenceClassification`` for the built-in presets) with a fresh scalar
  head, reading its score at the last non-pad token (EOS, which has attended to the whole exchange).
- ``likelihood``: the causal LM itself, scoring a completion by its summed log-probability
  (EOS included). Started from the SFT model it begins as the SFT model's own judgement of an
  answer, which on the built-in task already ranks a correct sum above a wrong one far more often
  than a freshly initialised head on the EOS state can learn to; Bradley–Terry training then
  sharpens it. It is the implicit reward of DPO with a uniform reference.

The head is recorded in the checkpoint's ``config.json`` (``redraft_reward_head``). Normalisation
statistics (mean/std of the raw score over the training completions) are saved next to the weights
in ``reward_stats.json`` so every user of the model scores on the same scale.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedModel,
)

from redraft.algorithms import logprobs_from_logits
from redraft.config import ModelSection
from redraft.data.sequences import TokenizedData, collate, sft_data
from redraft.errors import RedraftError
from redraft.fsutil import atomic_directory
from redraft.models.adapters import is_lora, plain_model
from redraft.models.build import ADAPTER_DIR, build_model, torch_dtype

STATS_FILE = "reward_stats.json"
HEAD_KEY = "redraft_reward_head"
RewardHead = Literal["classifier", "likelihood"]


@dataclass(frozen=True)
class RewardStats:
    mean: float = 0.0
    std: float = 1.0

    @classmethod
    def of(cls, scores: torch.Tensor) -> RewardStats:
        # A constant score would give std 0; 1 leaves such a model's scores merely centred.
        std = float(scores.std()) if len(scores) > 1 else 0.0
        return cls(mean=float(scores.mean()), std=std if std > 1e-6 else 1.0)

    def normalise(self, scores: torch.Tensor) -> torch.Tensor:
        return (scores - self.mean) / self.std


def build_reward_model(
    tokenizer, model_cfg: ModelSection, fresh: bool = False, head: RewardHead = "classifier"
) -> PreTrainedModel:
    """A reward model from ``model_cfg.path`` or a fresh preset.

    ``classifier``: a one-output sequence classifier (the LM head dropped) whose head starts as
    N(0, 1/√(d+1)) (the reference RLHF recipe), so initial scores are small but not identical.
    ``likelihood``: the causal LM as it is.
    """
    if head == "likelihood":
        if not fresh:
            _require_checkpoint(model_cfg)
        model = build_model(model_cfg if not fresh else model_cfg.model_copy(update={"path": None}), tokenizer)
        setattr(model.config, HEAD_KEY, "likelihood")
        return model
    dtype = torch_dtype(model_cfg.dtype)
    if fresh:
        body_config = build_model(model_cfg.model_copy(update={"path": None}), tokenizer).config
        model = AutoModelForSequenceClassification.from_config(_scalar_head(body_config, tokenizer)).to(dtype)
    else:
        _require_checkpoint(model_cfg)
        config = _scalar_head(AutoConfig.from_pretrained(model_cfg.path), tokenizer)
        model = AutoModelForSequenceClassification.from_pretrained(model_cfg.path, config=config, dtype=dtype)
    head = model.score
    nn.init.normal_(head.weight, std=1.0 / math.sqrt(head.in_features + 1))
    return model


def _require_checkpoint(model_cfg: ModelSection) -> None:
    if not model_cfg.path or not (Path(model_cfg.path) / "config.json").is_file():
        raise RedraftError(f"reward model: no HF checkpoint at {model_cfg.path!r} (set model.path)")


def reward_head(model: PreTrainedModel) -> RewardHead:
    return getattr(model.config, HEAD_KEY, "classifier")


def sequence_scores(
    model: PreTrainedModel, batch: dict[str, torch.Tensor], head: RewardHead | None = None
) -> torch.Tensor:
    """(B,) raw scores of a collated batch (``input_ids``, ``attention_mask``, ``loss_mask`` on the completion).

    ``head`` defaults to the model's own; pass it for a wrapped model (DDP) that hides its config.
    """
    outputs = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    if (head or reward_head(model)) == "classifier":
        return outputs.logits[:, 0].float()
    token_logp = logprobs_from_logits(outputs.logits[:, :-1], batch["input_ids"][:, 1:])
    return (token_logp * batch["loss_mask"][:, 1:]).sum(dim=1)


def _scalar_head(config, tokenizer):
    config.num_labels = 1
    # The score is read at the last token that is not padding, so the model must know the pad id.
    config.pad_token_id = tokenizer.pad_token_id
    return config


def reward_inputs(tokenizer, prompts: list[str], completions: list[str], max_length: int = 256) -> TokenizedData:
    """``prompt ‖ completion ‖ EOS``, the prompt encoded exactly as the sampler encodes it."""
    return sft_data(tokenizer, prompts, completions, max_length)


@torch.no_grad()
def raw_scores(model: PreTrainedModel, data: TokenizedData, batch_size: int = 256) -> torch.Tensor:
    """(N,) unnormalised fp32 scores, in eval mode, batch by batch."""
    was_training = model.training
    model.eval()
    scores = []
    for start in range(0, len(data), batch_size):
        batch = collate(data, list(range(start, min(start + batch_size, len(data)))))
        scores.append(sequence_scores(model, batch).float())
    model.train(was_training)
    return torch.cat(scores) if scores else torch.zeros(0)


def save_reward_model(model: PreTrainedModel, tokenizer, stats: RewardStats, path: str | Path) -> None:
    with atomic_directory(path) as staging:
        plain_model(model).save_pretrained(staging, safe_serialization=True)
        if is_lora(model):
            model.save_pretrained(staging / ADAPTER_DIR)
        tokenizer.save_pretrained(staging)
        (staging / STATS_FILE).write_text(json.dumps(asdict(stats), indent=2))


def load_reward_model(path: str | Path, dtype: str | torch.dtype | None = None) -> tuple[PreTrainedModel, RewardStats]:
    """The reward model saved at ``path`` in ``dtype`` (fp32 when None), in eval mode, with its score statistics."""
    path, dtype = Path(path), torch_dtype(dtype)
    if not (path / "config.json").is_file():
        raise RedraftError(f"no reward model at {path} (config.json missing)")
    stats_path = path / STATS_FILE
    if not stats_path.is_file():
        raise RedraftError(f"{path} has no {STATS_FILE}: train it with `redraft rm train`")
    if getattr(AutoConfig.from_pretrained(str(path)), HEAD_KEY, "classifier") == "likelihood":
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).eval(), RewardStats(
            **json.loads(stats_path.read_text())
        )
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=dtype)
    if model.config.num_labels != 1:
        raise RedraftError(f"{path} is not a reward model (num_labels is {model.config.num_labels}, expected 1)")
    return model.eval(), RewardStats(**json.loads(stats_path.read_text()))
