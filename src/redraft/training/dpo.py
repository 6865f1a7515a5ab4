"""DPO: the policy learns from preference pairs directly, against a frozen reference (its start).

The reference's completion log-probs are computed once for every pair before training (the
reference never changes), so each step runs only the policy: one forward over the batch's chosen
and rejected sequences, summed log-probs of the completion tokens (EOS included, prompt
excluded), :func:`redraft.algorithms.dpo_loss`, plus optionally (``sft_coef``, RPO) the
per-token NLL of the chosen completions. Logged per step: loss, implicit-reward margin and
accuracy; per validation: the same on held-out pairs, greedy accuracy on validation problems and
KL(π ‖ π_ref) estimated on the policy's own samples.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import torch

from redraft.algorithms import dpo_loss
from redraft.config import DPOSection, LoggingSection, SamplingSection
from redraft.data.preferences import PreferencePair
from redraft.errors import RedraftError
from redraft.evaluation.evaluate import greedy_accuracy
from redraft.models.adapters import apply_freeze, apply_lora, plain_model
from redraft.models.build import load_model, save_model
from redraft.rollout.batch import sequence_logprobs
from redraft.rollout.sampler import generate
from redraft.tasks.base import Task
from redraft.training.logging import MetricsLog
from redraft.training.loop import Monitor
from redraft.training.pairwise import (
    Batch,
    PairData,
    chosen_nll,
    pair_batch,
    pair_data,
    split_pair_outputs,
    train_pairwise,
)


def completion_logprobs(model, batch: Batch) -> torch.Tensor:
    """(2B,) summed log-prob of each sequence's completion tokens (``loss_mask``)."""
    logp, _ = sequence_logprobs(model, batch["input_ids"], batch["attention_mask"], 1.0)
    return (logp * batch["loss_mask"]).sum(dim=1)


def completion_lengths(batch: Batch) -> dict[str, torch.Tensor]:
    """``dpo_loss``'s chosen_lengths / rejected_lengths: completion tokens per sequence (for ipo_mean)."""
    chosen, rejected = split_pair_outputs(batch["loss_mask"].sum(dim=1))
    return {"chosen_lengths": chosen, "rejected_lengths": rejected}


@torch.no_grad()
def add_reference_logprobs(reference, data: PairData, batch_size: int) -> None:
    """Store the reference's chosen/rejected completion log-probs in ``data.extra``."""
    reference.eval()
    chosen, rejected = [], []
    for start in range(0, len(data), batch_size):
        rows = list(range(start, min(start + batch_size, len(data))))
        c, r = split_pair_outputs(completion_logprobs(reference, pair_batch(data, rows)))
        chosen.append(c)
        rejected.append(r)
    data.extra["ref_chosen"], data.extra["ref_rejected"] = torch.cat(chosen), torch.cat(rejected)


@torch.no_grad()
def sampled_kl(
    policy, reference, tokenizer, prompts: list[str], max_new_tokens: int, seed: int = 0, stop: Sequence[str] = ()
) -> dict[str, float]:
    """KL(π ‖ π_ref) per completion, estimated on completions sampled from π at T = 1 (each ended by EOS, a
    ``stop`` string or ``max_new_tokens``).

    ``kl`` is the mean over samples of Σ_t (log π − log π_ref) (k1: unbiased for the sequence KL);
    ``kl_k3`` sums the low-variance k3 estimator per token instead.
    """
    if not prompts:
        return {}
    samples = generate(
        policy,
        tokenizer,
        prompts,
        SamplingSection(temperature=1.0, max_new_tokens=max_new_tokens, stop=list(stop)),
        seed=seed,
    )
    sequences = [p + t for p, t in zip(samples.prompt_ids, samples.token_ids)]
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), tokenizer.pad_token_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    action = torch.zeros(len(sequences), width)
    policy_logp = torch.zeros(len(sequences), width)
    for i, (prompt, generated, logps) in enumerate(zip(samples.prompt_ids, samples.token_ids, samples.logprobs)):
        ids[i, : len(prompt) + len(generated)] = torch.tensor(prompt + generated)
        attention[i, : len(prompt) + len(generated)] = 1
        action[i, len(prompt) : len(prompt) + len(generated)] = 1.0
        policy_logp[i, len(prompt) : len(prompt) + len(generated)] = torch.tensor(logps)
    was_training = reference.training
    reference.eval()
    ref_logp, _ = sequence_logprobs(reference, ids, attention, 1.0)
    reference.train(was_training)
    log_ratio = (policy_logp - ref_logp) * action
    k3 = (torch.exp(-log_ratio) - 1 + log_ratio) * action
    return {"kl": float(log_ratio.sum(dim=1).mean()), "kl_k3": float(k3.sum(dim=1).mean())}


def dpo_batch_loss(model, batch: Batch, cfg: DPOSection) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The DPO loss of a stacked pair batch, plus ``cfg.sft_coef`` × the chosen completions' NLL (RPO)."""
    chosen, rejected = split_pair_outputs(completion_logprobs(model, batch))
    loss, stats = dpo_loss(
        chosen,
        rejected,
        batch["ref_chosen"],
        batch["ref_rejected"],
        cfg.beta,
        cfg.label_smoothing,
        cfg.loss,
        **completion_lengths(batch),
    )
    if cfg.sft_coef:
        nll = chosen_nll(chosen, batch)
        loss = loss + cfg.sft_coef * nll
        stats = {**stats, "chosen_nll": nll.detach()}
    return loss, stats


@torch.no_grad()
def held_out_pair_metrics(model, val: PairData, cfg: DPOSection) -> dict[str, float]:
    """``val_loss`` and the DPO stats (``val_``-prefixed) over all held-out pairs (the loss without RPO's term)."""
    model.eval()
    chosen, rejected, lengths = [], [], []
    for start in range(0, len(val), cfg.train.batch_size):
        rows = list(range(start, min(start + cfg.train.batch_size, len(val))))
        batch = pair_batch(val, rows)
        c, r = split_pair_outputs(completion_logprobs(model, batch))
        chosen.append(c)
        rejected.append(r)
        lengths.append(completion_lengths(batch))
    loss, stats = dpo_loss(
        torch.cat(chosen),
        torch.cat(rejected),
        val.extra["ref_chosen"],
        val.extra["ref_rejected"],
        cfg.beta,
        cfg.label_smoothing,
        cfg.loss,
        **{key: torch.cat([part[key] for part in lengths]) for key in ("chosen_lengths", "rejected_lengths")},
    )
    return {"val_loss": float(loss), **{f"val_{k}": float(v) for k, v in stats.items()}}


def _selection_monitor(cfg: DPOSection, has_problems: bool, has_val: bool) -> Monitor:
    """The validation metric that keeps a policy: ``cfg.select_by``, where ``auto`` is the task's greedy accuracy
    where there is a task, else what the pairs alone define."""
    select_by = cfg.select_by if cfg.select_by != "auto" else "accuracy" if has_problems else "reward_accuracy"
    if select_by == "accuracy" and not (has_problems and has_val):
        raise RedraftError(
            "dpo.select_by=accuracy needs the task's validation problems and held-out pairs (or use select_by=loss)"
        )
    if select_by == "reward_accuracy" and not has_val and cfg.select_by != "auto":
        raise RedraftError(
            "dpo.select_by=reward_accuracy needs held-out pairs (pairs.val_path or pairs.val_fraction > 0)"
        )
    return {
        "accuracy": Monitor("val_accuracy", maximize=True),
        "loss": Monitor(),
        "reward_accuracy": Monitor("val_reward_accuracy", maximize=True),
    }[select_by]


def train_dpo(
    *,
    model_path: str | Path,
    tokenizer,
    train_pairs: list[PreferencePair],
    val_pairs: list[PreferencePair],
    cfg: DPOSection,
    out_dir: str | Path,
    seed: int,
    log: MetricsLog,
    logging: LoggingSection,
    task: Task | None = None,
    resume: bool = False,
    dtype: str = "fp32",
) -> dict[str, Any]:
    """DPO of the policy at ``model_path``; the kept policy (``cfg.select_by``) goes to ``out_dir/model``.
    Without a ``task`` there is no greedy accuracy: validation is the held-out pairs' alone."""
    started = time.perf_counter()
    reference = load_model(model_path, dtype).eval().requires_grad_(False)
    policy = load_model(model_path, dtype)
    if task is not None:
        task.use_tokenizer(tokenizer)  # chat prompts are rendered by its chat template
    apply_freeze(policy, cfg.train.freeze)
    if cfg.train.lora.enabled:
        policy = apply_lora(policy, cfg.train.lora)
    length = cfg.train.max_length
    train = pair_data(tokenizer, train_pairs, length, "dpo.train.max_length")
    add_reference_logprobs(reference, train, cfg.train.batch_size)
    val = None
    if val_pairs:
        val = pair_data(tokenizer, val_pairs, length, "dpo.train.max_length")
        add_reference_logprobs(reference, val, cfg.train.batch_size)
    problems = task.val[: cfg.eval_problems] if task is not None else []
    kl_prompts = [task.prompt(ex) for ex in task.val[: cfg.kl_prompts]] if task is not None else []
    monitor = _selection_monitor(cfg, bool(problems), val is not None)

    @torch.no_grad()
    def validate(current) -> dict[str, float]:
        metrics = held_out_pair_metrics(current, val, cfg)
        plain = plain_model(current)
        if problems:
            metrics["val_accuracy"] = greedy_accuracy(
                plain, tokenizer, task, problems, max_new_tokens=cfg.max_new_tokens, stop=cfg.stop
            )
        kl = sampled_kl(plain, reference, tokenizer, kl_prompts, cfg.max_new_tokens, seed, cfg.stop)
        return metrics | {f"val_{k}": v for k, v in kl.items()}

    result = train_pairwise(
        stage="dpo",
        model=policy,
        train=train,
        cfg=cfg.train,
        loss_fn=partial(dpo_batch_loss, cfg=cfg),
        export=lambda current, path: save_model(current, tokenizer, path),
        out_dir=out_dir,
        seed=seed,
        log=log,
        logging=logging,
        validate=validate if val is not None else None,
        monitor=monitor,
        resume=resume,
    )
    return {**asdict(result), "model_dir": str(result.model_dir), "seconds": time.perf_counter() - started}
