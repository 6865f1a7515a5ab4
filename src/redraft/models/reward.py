"""Reward models: a scalar sequence-classification head on a causal LM.

The model is transformers' ``AutoModelForSequenceClassification`` for the policy's architecture
(``LlamaForSequenceClassification`` for the built-in presets), started from an SFT checkpoint or
fresh. It reads its score at the last non-pad token of ``prompt ‖ completion ‖ EOS``: the EOS
position has attended to the whole exchange. Normalisation statistics (mean/std of the raw score
over the training completions) are saved next to the weights in ``reward_stats.json`` so every
user of the model scores on the same scale.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel

from redraft.config import ModelConfig
from redraft.errors import RedraftError
from redraft.fsutil import atomic_directory
from redraft.models.build import build_model
from redraft.training.data import TokenizedData, collate, sft_data

STATS_FILE = "reward_stats.json"


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


def build_reward_model(tokenizer, model_cfg: ModelConfig, fresh: bool = False) -> PreTrainedModel:
    """A one-output sequence classifier: ``model_cfg.path``'s body (its LM head dropped) or a fresh preset.

    The head starts as N(0, 1/√(d+1)) (the reference RLHF recipe), so initial scores are small but
    not identical.
    """
    if fresh:
        body_config = build_model(model_cfg.model_copy(update={"path": None}), tokenizer).config
        model = AutoModelForSequenceClassification.from_config(_scalar_head(body_config, tokenizer))
    else:
        if not model_cfg.path or not (Path(model_cfg.path) / "config.json").is_file():
            raise RedraftError(f"reward model: no HF checkpoint at {model_cfg.path!r} (set model.path)")
        config = _scalar_head(AutoConfig.from_pretrained(model_cfg.path), tokenizer)
        model = AutoModelForSequenceClassification.from_pretrained(model_cfg.path, config=config, dtype=torch.float32)
    head = model.score
    nn.init.normal_(head.weight, std=1.0 / math.sqrt(head.in_features + 1))
    return model


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
    """(N,) unnormalised scores, in eval mode, batch by batch."""
    was_training = model.training
    model.eval()
    scores = []
    for start in range(0, len(data), batch_size):
        batch = collate(data, list(range(start, min(start + batch_size, len(data)))))
        scores.append(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0].float())
    model.train(was_training)
    return torch.cat(scores) if scores else torch.zeros(0)


def save_reward_model(model: PreTrainedModel, tokenizer, stats: RewardStats, path: str | Path) -> None:
    with atomic_directory(path) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / STATS_FILE).write_text(json.dumps(asdict(stats), indent=2))


def load_reward_model(path: str | Path) -> tuple[PreTrainedModel, RewardStats]:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise RedraftError(f"no reward model at {path} (config.json missing)")
    stats_path = path / STATS_FILE
    if not stats_path.is_file():
        raise RedraftError(f"{path} has no {STATS_FILE}: train it with `redraft rm train`")
    model = AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32)
    if model.config.num_labels != 1:
        raise RedraftError(f"{path} is not a reward model (num_labels is {model.config.num_labels}, expected 1)")
    return model.eval(), RewardStats(**json.loads(stats_path.read_text()))
