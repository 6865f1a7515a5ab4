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

    The validation loss is the LM loss alone, anchored or not, so runs stay comparable.
    """
    out_dir = Path(out_dir)
    started = time.perf_counter()
    set_seed(seed)
    if anchor is not None and train.anchor_mask is None:
        raise TrainingError(f"{stage}: an anchor needs training data with an anchor_mask")
    apply_freeze(model, cfg.freeze)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg.lora)
    if len(train) < cfg.batch_size:
        raise TrainingError(f"{stage}: {len(train)} training examples, fewer than one batch of {cfg.batch_size}")

    loop = TrainingLoop(
        stage, out_dir, log, logging, cfg, hint="Try a lower train.optim.lr or check the data.", started=started
    )
    accelerator, rank, world = loop.accelerator, loop.rank, loop.world
    model, optimizer, scheduler = loop.prepare(model, cfg.optim, cfg.max_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if anchor is not None:
        reference = anchor.reference.to(accelerator.device).eval().requires_grad_(False)
    state = {"best_val_loss": math.inf, "evals_without_improvement": 0, "train_loss": math.nan}
    first_step = loop.resume(resume, state)
    require_divisible("train.batch_size", cfg.batch_size, world)
    # Rows cut at train.max_length (the data warned already): logged with the first step's metrics.
    first_metrics = {"truncated_rows": train.truncated} if train.truncated and first_step == 1 else {}
    window = {"tokens": 0, "start": time.perf_counter()}  # throughput since the last logged step

    def micro_batches(step: int) -> list[dict[str, torch.Tensor]]:
        accum = cfg.grad_accum_steps
        rows = [micro_batch_rows(len(train), cfg.batch_size, seed, (step - 1) * accum + i) for i in range(accum)]
        return [collate(train, r[rank::world]) for r in rows]

    def masked_tokens(batches, key: str) -> torch.Tensor:
        return global_sum(accelerator, sum(b[key][:, 1:].sum() for b in batches)).clamp(min=1.0)

    def train_step(step: int) -> str:
        batches = micro_batches(step)
        # Normalise by the global token count; DDP averages gradients over ranks, hence the
        # factor ``world``: the update is then the one a single process makes on the whole batch.
        step_tokens = masked_tokens(batches, "loss_mask")
        if anchor is not None:
            anchor_tokens = masked_tokens(batches, "anchor_mask")
        step_loss, step_anchor_kl = 0.0, 0.0
        for i, batch in enumerate(batches):
            with nullcontext() if i == len(batches) - 1 else accelerator.no_sync(model):
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                loss = masked_lm_loss_sum(logits, batch["input_ids"], batch["loss_mask"]) * world / step_tokens.item()
                value = loss.item() / world
                if anchor is not None:
                    with torch.no_grad():
                        ref_logits = reference(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                    kl = masked_kl_to_reference_sum(logits, ref_logits.logits, batch["anchor_mask"])
                    kl = kl * world / anchor_tokens.item()
                    kl_value = kl.item() / world
                    step_anchor_kl += kl_value
                    loss = loss + anchor.coef * kl
                    value += anchor.coef * kl_value
                loop.require_finite(value, "loss", step)
                accelerator.backward(loss)
            step_loss += value
            window["tokens"] += int(batch["attention_mask"].sum())
        grad_norm = accelerator.clip_grad_norm_(trainable, cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step_loss = float(global_sum(accelerator, step_loss))
        state["train_loss"] = step_loss
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            elapsed = time.perf_counter() - window["start"]
            metrics = {
                "loss": step_loss,
                "lr": scheduler.get_last_lr()[0],
                "grad_norm": float(grad_norm),
                "tokens_per_s": float(global_sum(accelerator, window["tokens"])) / max(elapsed, 1e-9),
            }
            if anchor is not None:
                metrics["anchor_kl"] = float(global_sum(accelerator, step_anchor_kl))
            metrics.update(first_metrics)
            first_metrics.clear()
            loop.write(step, metrics)
            window.update(tokens=0, start=time.perf_counter())
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
