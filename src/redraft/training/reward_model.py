"""Reward-model training: Bradley–Terry loss on (chosen, rejected) pairs.

Each step scores a batch's chosen and rejected completions in one forward pass, takes the
Bradley–Terry loss (optional margins and centring term) and logs the training pairwise accuracy.
Validation reports the loss and pairwise accuracy on held-out pairs; the model with the best
held-out accuracy (or the lowest held-out loss: ``select_by``) is kept. At the end the kept model
scores every training completion once and the mean/std of those scores are saved with it
(``reward_stats.json``) for normalised scoring.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState

from redraft.algorithms import bradley_terry_loss
from redraft.config import LoggingSection, RewardModelSection
from redraft.data.preferences import PreferencePair, as_text_pair
from redraft.fsutil import write_json_atomic
from redraft.models.adapters import apply_freeze, apply_lora
from redraft.models.reward import (
    STATS_FILE,
    RewardHead,
    RewardStats,
    load_reward_model,
    raw_scores,
    reward_head,
    reward_inputs,
    save_reward_model,
    sequence_scores,
)
from redraft.training.logging import MetricsLog
from redraft.training.loop import Monitor
from redraft.training.pairwise import (
    Batch,
    PairData,
    chosen_nll,
    pair_data,
    split_pair_outputs,
    train_pairwise,
)


def pair_rewards(model, batch: Batch, head: RewardHead) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen rewards, rejected rewards) of a stacked pair batch."""
    return split_pair_outputs(sequence_scores(model, batch, head))


@torch.no_grad()
def evaluate_pairs(model, data: PairData, cfg: RewardModelSection) -> dict[str, float]:
    """Held-out Bradley–Terry loss and pairwise accuracy (ties count half)."""
    was_training = model.training
    model.eval()
    chosen = raw_scores(model, data.chosen, cfg.score_batch_size)
    rejected = raw_scores(model, data.rejected, cfg.score_batch_size)
    model.train(was_training)
    loss, stats = bradley_terry_loss(chosen, rejected, data.margins if cfg.use_margins else None, cfg.center_coef)
    return {
        "val_loss": float(loss),
        "val_accuracy": float(stats["accuracy"]),
        "val_reward_margin": float(stats["reward_margin"]),
    }


def train_reward_model(
    *,
    model,
    tokenizer,
    train_pairs: list[PreferencePair],
    val_pairs: list[PreferencePair],
    cfg: RewardModelSection,
    out_dir: str | Path,
    seed: int,
    log: MetricsLog,
    logging: LoggingSection,
    resume: bool = False,
) -> dict[str, Any]:
    """Train ``model`` (a one-output sequence classifier); the kept model + stats go to ``out_dir/model``."""
    started = time.perf_counter()
    apply_freeze(model, cfg.train.freeze)
    if cfg.train.lora.enabled:
        model = apply_lora(model, cfg.train.lora, "CAUSAL_LM" if reward_head(model) == "likelihood" else "SEQ_CLS")
    length = cfg.train.max_length
    # A reward model scores prompt text and reply text, as PPO gives them: conversational pairs become text.
    train_pairs = [as_text_pair(tokenizer, p) for p in train_pairs]
    val_pairs = [as_text_pair(tokenizer, p) for p in val_pairs]
    train = pair_data(tokenizer, train_pairs, length, "reward_model.train.max_length")
    val = pair_data(tokenizer, val_pairs, length, "reward_model.train.max_length") if val_pairs else None

    head = reward_head(model)

    def loss_fn(current, batch: Batch):
        chosen, rejected = pair_rewards(current, batch, head)
        loss, stats = bradley_terry_loss(
            chosen, rejected, batch["margin"] if cfg.use_margins else None, cfg.center_coef
        )
        if cfg.sft_coef:
            # The likelihood head's score is the chosen completion's log-prob: this is its per-token NLL.
            nll = chosen_nll(chosen, batch)
            loss, stats = loss + cfg.sft_coef * nll, {**stats, "chosen_nll": nll.detach()}
        return loss, stats

    def export(current, path: Path) -> None:
        # Stats are computed once at the end, for the model that is finally kept.
        save_reward_model(current, tokenizer, RewardStats(), path)

    result = train_pairwise(
        stage="reward_model",
        model=model,
        train=train,
        cfg=cfg.train,
        loss_fn=loss_fn,
        export=export,
        out_dir=out_dir,
        seed=seed,
        log=log,
        logging=logging,
        validate=(lambda current: evaluate_pairs(current, val, cfg)) if val is not None else None,
        monitor=Monitor("val_accuracy", maximize=True) if cfg.select_by == "accuracy" else Monitor(),
        resume=resume,
    )
    kept, _ = load_reward_model(result.model_dir, model.dtype)
    completions = {(p.prompt, text) for p in train_pairs for text in (p.chosen, p.rejected)}
    prompts, texts = zip(*sorted(completions))
    stats = RewardStats.of(
        raw_scores(kept, reward_inputs(tokenizer, list(prompts), list(texts), length), cfg.score_batch_size)
    )
    processes = PartialState()  # the trainer's process group: every rank computed the same stats
    if processes.is_main_process:
        write_json_atomic(result.model_dir / STATS_FILE, asdict(stats))  # the weights (and adapter) stay
    processes.wait_for_everyone()
    summary = {**asdict(result), "model_dir": str(result.model_dir), "reward_stats": asdict(stats)}
    if val is not None:
        summary.update(evaluate_pairs(kept, val, cfg))
    summary["seconds"] = time.perf_counter() - started
    return summary
