"""Pretraining and SFT: one causal-LM loop, differing only in which tokens carry loss.

AdamW with warmup + cosine decay, gradient clipping and accumulation, an optional anchor (exact
KL to a frozen reference model on marked tokens), validation loss with early stopping, JSONL
metrics (TensorBoard/W&B optional), atomic checkpoints and exact resume, all on `accelerate` so
the loop is the same on CPU, one GPU or several.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from accelerate.utils import set_seed
from transformers import PreTrainedModel

from redraft.config import LoggingSection, TrainSection
from redraft.data.sequences import TokenizedData, collate, micro_batch_rows
from redraft.distributed import global_sum, require_divisible
from redraft.errors import TrainingError
from redraft.models.adapters import apply_freeze, apply_lora, plain_model
from redraft.models.build import save_model
from redraft.training.logging import MetricsLog
from redraft.training.loop import Monitor, Schedule, TrainingLoop, Validation
from redraft.training.losses import masked_kl_to_reference_sum, masked_lm_loss_sum

ValMetricsFn = Callable[[PreTrainedModel], dict[str, float]]


@dataclass
class StageResult:
    model_dir: Path
    steps: int
    train_loss: float
    best_val_loss: float | None
    stopped_early: bool
    seconds: float


@dataclass
class Anchor:
    """Adds ``coef`` · KL(reference ‖ model) on the tokens the data's ``anchor_mask`` marks, per marked token.

    Pair-SFT uses it to keep attempt 1 at the SFT model while attempt 2 learns to correct. The
    logged ``loss`` includes the term; ``anchor_kl`` is the KL alone. Every process holds a whole
    copy of the reference (it is not sharded).
    """

    reference: PreTrainedModel
    coef: float


class TokenRate:
    """Tokens per second over all processes since the last read (the logged ``tokens_per_s``)."""

    def __init__(self, accelerator):
        self.accelerator, self.tokens, self.start = accelerator, 0, time.perf_counter()

    def read(self) -> float:
        elapsed = time.perf_counter() - self.start
        rate = float(global_sum(self.accelerator, self.tokens)) / max(elapsed, 1e-9)
        self.tokens, self.start = 0, time.perf_counter()
        return rate


@torch.no_grad()
def validation_loss(model, data: TokenizedData, batch_size: int) -> float:
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0.0
    device = next(model.parameters()).device
    for start in range(0, len(data), batch_size):
        batch = collate(data, list(range(start, min(start + batch_size, len(data)))))
        batch = {k: v.to(device) for k, v in batch.items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        total += masked_lm_loss_sum(logits, batch["input_ids"], batch["loss_mask"]).item()
        tokens += batch["loss_mask"][:, 1:].sum().item()
    model.train(was_training)
    return total / max(tokens, 1.0)


def micro_batch_loss(
    model, batch: dict[str, torch.Tensor], world: int, tokens: dict[str, float], anchor: Anchor | None
) -> tuple[torch.Tensor, float, float]:
    """``(loss, its value, the anchor KL's value)`` of one micro-batch, scaled by ``world`` (DDP averages over
    ranks): the LM loss summed over the batch's ``loss_mask`` per ``tokens["loss_mask"]`` (the whole step's count),
    plus, with an ``anchor``, its coefficient times the KL to the reference summed over the ``anchor_mask`` per
    ``tokens["anchor_mask"]``."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    loss = masked_lm_loss_sum(logits, batch["input_ids"], batch["loss_mask"]) * world / tokens["loss_mask"]
    if anchor is None:
        return loss, loss.item(), 0.0
    with torch.no_grad():
        ref_logits = anchor.reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    kl = masked_kl_to_reference_sum(logits, ref_logits, batch["anchor_mask"]) * world / tokens["anchor_mask"]
    return loss + anchor.coef * kl, loss.item() + anchor.coef * kl.item(), kl.item()


def accumulate_gradients(
    accelerator, model, batches: list[dict[str, torch.Tensor]], anchor: Anchor | None, check: Callable[[float], None]
) -> tuple[float, float, int]:
    """Forward and backward each micro-batch of one step (gradient sync on the last only); ``check`` sees every
    micro-batch's loss value before its backward. Returns the step's loss summed over processes, and this
    process's share of the anchor KL and its tokens (summed over processes only when logged).

    Every micro-batch is normalised by the whole step's token count over all processes, times the process count
    (DDP averages gradients over ranks): the update is the one a single process makes on the whole batch.
    """
    world = accelerator.num_processes
    keys = ("loss_mask", "anchor_mask") if anchor is not None else ("loss_mask",)
    step_tokens = {
        key: global_sum(accelerator, sum(b[key][:, 1:].sum() for b in batches)).clamp(min=1.0).item() for key in keys
    }
    step_loss, step_anchor_kl, tokens = 0.0, 0.0, 0
    for i, batch in enumerate(batches):
        with nullcontext() if i == len(batches) - 1 else accelerator.no_sync(model):
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            loss, value, anchor_kl = micro_batch_loss(model, batch, world, step_tokens, anchor)
            check(value / world)
            accelerator.backward(loss)
        step_loss += value / world
        step_anchor_kl += anchor_kl / world
        tokens += int(batch["attention_mask"].sum())
    return float(global_sum(accelerator, step_loss)), step_anchor_kl, tokens


def _trainable_model(stage: str, model, train: TokenizedData, cfg: TrainSection, anchor: Anchor | None):
    """``model`` with ``cfg.freeze`` applied and LoRA adapters where ``cfg.lora`` asks, once the data is checked."""
    if anchor is not None and train.anchor_mask is None:
        raise TrainingError(f"{stage}: an anchor needs training data with an anchor_mask")
    if len(train) < cfg.batch_size:
        raise TrainingError(f"{stage}: {len(train)} training examples, fewer than one batch of {cfg.batch_size}")
    apply_freeze(model, cfg.freeze)
    return apply_lora(model, cfg.lora) if cfg.lora.enabled else model


def train_lm(
    *,
    stage: str,
    model: PreTrainedModel,
    tokenizer,
    train: TokenizedData,
    val: TokenizedData | None,
    cfg: TrainSection,
    out_dir: str | Path,
    seed: int,
    log: MetricsLog,
    logging: LoggingSection,
    resume: bool = False,
    val_metrics: ValMetricsFn | None = None,
    anchor: Anchor | None = None,
) -> StageResult:
    """Train ``model`` and write the best (or, without validation data, the last) model to ``out_dir/model``.
    The validation loss is the LM loss alone, anchored or not, so runs stay comparable."""
    out_dir, started = Path(out_dir), time.perf_counter()
    set_seed(seed)
    model = _trainable_model(stage, model, train, cfg, anchor)
    loop = TrainingLoop(
        stage, out_dir, log, logging, cfg, hint="Try a lower train.optim.lr or check the data.", started=started
    )
    accelerator, rank, world = loop.accelerator, loop.rank, loop.world
    model, optimizer, scheduler = loop.prepare(model, cfg.optim, cfg.max_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if anchor is not None:
        anchor.reference.to(accelerator.device).eval().requires_grad_(False)
    state = {"best_val_loss": math.inf, "evals_without_improvement": 0, "train_loss": math.nan}
    first_step = loop.resume(resume, state)
    require_divisible("train.batch_size", cfg.batch_size, world)
    # Rows cut at train.max_length (the data warned already): logged with the first step's metrics.
    first_metrics = {"truncated_rows": train.truncated} if train.truncated and first_step == 1 else {}
    throughput = TokenRate(accelerator)

    def micro_batches(step: int) -> list[dict[str, torch.Tensor]]:
        accum = cfg.grad_accum_steps
        rows = [micro_batch_rows(len(train), cfg.batch_size, seed, (step - 1) * accum + i) for i in range(accum)]
        return [collate(train, r[rank::world]) for r in rows]

    def train_step(step: int) -> str:
        check = partial(loop.require_finite, what="loss", step=step)
        step_loss, anchor_kl, tokens = accumulate_gradients(accelerator, model, micro_batches(step), anchor, check)
        throughput.tokens += tokens
        grad_norm = accelerator.clip_grad_norm_(trainable, cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        state["train_loss"] = step_loss
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            metrics = {"loss": step_loss, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm)}
            metrics["tokens_per_s"] = throughput.read()
            metrics |= {"anchor_kl": float(global_sum(accelerator, anchor_kl))} if anchor is not None else {}
            loop.write(step, {**metrics, **first_metrics})
            first_metrics.clear()
        return f"loss {step_loss:.4f}"

    def measure() -> dict[str, float]:
        metrics = {"val_loss": validation_loss(model, val, cfg.batch_size)}
        if val_metrics is not None:
            metrics.update(val_metrics(plain_model(accelerator.unwrap_model(model))))
        return metrics

    def export() -> None:
        save_model(accelerator.unwrap_model(model), tokenizer, loop.model_dir)

    model.train()
    monitor = Monitor("val_loss", state_key="best_val_loss")
    validation = Validation(measure, cfg.eval_every, monitor, cfg.patience) if val is not None and len(val) else None
    loop.run(first_step, train_step, Schedule.of(cfg), state, trainable, export=export, validation=validation)
    best = state["best_val_loss"]
    return StageResult(
        model_dir=loop.model_dir,
        steps=loop.last_step,
        train_loss=state["train_loss"],
        best_val_loss=None if not math.isfinite(best) else best,
        stopped_early=loop.stopped_early,
        seconds=time.perf_counter() - started,
    )
