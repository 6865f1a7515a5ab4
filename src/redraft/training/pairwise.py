"""The training loop shared by the reward model and DPO: batches of (chosen, rejected) pairs.

Both trainers tokenize every pair once (``prompt ‖ completion ‖ EOS``, loss mask on the
completion), then run the same loop as ``train_lm``: a data order that is a pure function of
``(seed, step)``, gradient accumulation, clipping, AdamW with warmup + cosine, validation every
``eval_every`` steps with the best model exported (by a monitored validation metric: the loss by
default; the trainers monitor accuracy, which is what they are for), optional early stopping,
JSONL metrics, atomic checkpoints and exact resume. They differ only in the loss of a batch and in
what they validate, which they pass in.

Under N processes each rank takes every N-th row of each micro-batch. The pair losses are means
over a batch's pairs, and DDP averages gradients over ranks, so with equal shares the update is the
one a single process makes on the whole batch; logged training metrics are averaged over ranks.
Every rank validates on all held-out pairs (the same numbers everywhere, so all ranks agree on
early stopping) and the main process alone exports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from accelerate.utils import set_seed

from redraft.config import LoggingSection, TrainSection
from redraft.data.preferences import PreferencePair
from redraft.data.sequences import (
    TokenizedData,
    chat_sequence,
    collate,
    micro_batch_rows,
    pack_sequences,
    plain_sequences,
    sft_data,
)
from redraft.distributed import global_sum, mean_across_ranks, require_divisible
from redraft.errors import TrainingError
from redraft.training.logging import MetricsLog
from redraft.training.loop import Monitor, Schedule, TrainingLoop, Validation

Batch = dict[str, torch.Tensor]
PairLoss = Callable[[torch.nn.Module, Batch], tuple[torch.Tensor, dict[str, torch.Tensor]]]
Validate = Callable[[torch.nn.Module], dict[str, float]]  # must return the monitored metric
Export = Callable[[torch.nn.Module, Path], None]  # called on the main process only


@dataclass
class PairData:
    """Tokenized pairs; ``extra`` holds per-pair tensors a trainer adds (DPO: reference log-probs)."""

    chosen: TokenizedData
    rejected: TokenizedData
    margins: torch.Tensor  # (N,)
    pad_id: int
    extra: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.margins)


def pair_data(tokenizer, pairs: list[PreferencePair], max_length: int, setting: str = "train.max_length") -> PairData:
    """Both sides of every pair tokenized: ``prompt ‖ completion ‖ EOS`` for text pairs, the
    conversation rendered by the chat template for conversational pairs (loss on the completion's
    assistant messages, whose end-of-turn marker stands for EOS)."""
    if not any(p.is_chat for p in pairs):
        prompts = [p.prompt for p in pairs]
        chosen = sft_data(tokenizer, prompts, [p.chosen for p in pairs], max_length, "chosen sequences", setting)
        rejected = sft_data(tokenizer, prompts, [p.rejected for p in pairs], max_length, "rejected sequences", setting)
    else:
        chosen, rejected = (_side_data(tokenizer, pairs, side, max_length, setting) for side in ("chosen", "rejected"))
    return PairData(
        chosen=chosen,
        rejected=rejected,
        margins=torch.tensor([p.margin for p in pairs], dtype=torch.float32),
        pad_id=tokenizer.pad_token_id,
    )


def _side_data(tokenizer, pairs: list[PreferencePair], side: str, max_length: int, setting: str) -> TokenizedData:
    sequences, masks = [], []
    for pair in pairs:
        completion = getattr(pair, side)
        if pair.is_chat:
            ids, mask = chat_sequence(
                tokenizer,
                [*pair.prompt, *completion],
                [False] * len(pair.prompt) + [m.get("role") == "assistant" for m in completion],
            )
        else:
            ([ids], [mask]) = plain_sequences(tokenizer, [pair.prompt], [completion])
        sequences.append(ids)
        masks.append(mask)
    return pack_sequences(
        sequences, masks, tokenizer.pad_token_id, max_length, name=f"{side} sequences", setting=setting
    )


def pair_batch(data: PairData, rows: list[int] | torch.Tensor) -> Batch:
    """Chosen rows then rejected rows stacked into one (2B, L) batch, so one forward scores both."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    chosen, rejected = collate(data.chosen, rows), collate(data.rejected, rows)
    width = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
    batch = {
        key: torch.cat([_pad_right(chosen[key], width, pad), _pad_right(rejected[key], width, pad)])
        for key, pad in (("input_ids", data.pad_id), ("attention_mask", 0), ("loss_mask", 0))
    }
    batch["margin"] = data.margins[rows]
    batch.update({key: values[rows] for key, values in data.extra.items()})
    return batch


def _pad_right(tensor: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return torch.nn.functional.pad(tensor, (0, width - tensor.shape[1]), value=value)


def split_pair_outputs(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The chosen half and the rejected half of a stacked pair batch's outputs."""
    half = len(values) // 2
    return values[:half], values[half:]


def chosen_nll(chosen_logp: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Per-token NLL of the chosen completions from their summed log-probs (the RPO / SFT term).

    Divided by ``batch["chosen_tokens"]``, the whole micro-batch's chosen-token count per process,
    so that under DDP's gradient averaging it is the NLL of every rank's tokens together.
    """
    return -chosen_logp.sum() / batch["chosen_tokens"]


LOWEST_VAL_LOSS = Monitor()


@dataclass
class PairwiseResult:
    model_dir: Path
    steps: int
    train_loss: float
    monitor: str
    best_monitored: float | None  # the exported model's value of the monitored metric
    stopped_early: bool
    seconds: float


def accumulate_pair_gradients(
    accelerator, model, batches: Iterable[Batch], count: int, loss_fn: PairLoss, check: Callable[[float], None]
) -> tuple[float, dict[str, float]]:
    """Forward and backward ``count`` micro-batches of one step, each loss divided by ``count`` (gradient sync on
    the last only); ``check`` sees each loss value before its backward. Returns this process's mean loss and
    mean stats over the micro-batches."""
    step_loss, sums = 0.0, {}
    for i, batch in enumerate(batches):
        with nullcontext() if i == count - 1 else accelerator.no_sync(model):
            loss, stats = loss_fn(model, batch)
            value = loss.item()
            check(value)
            accelerator.backward(loss / count)
        step_loss += value / count
        for key, stat in stats.items():
            sums[key] = sums.get(key, 0.0) + float(stat) / count
    return step_loss, sums


def train_pairwise(
    *,
    stage: str,
    model: torch.nn.Module,
    train: PairData,
    cfg: TrainSection,
    loss_fn: PairLoss,
    export: Export,
    out_dir: str | Path,
    seed: int,
    log: MetricsLog,
    logging: LoggingSection,
    validate: Validate | None = None,
    monitor: Monitor = LOWEST_VAL_LOSS,
    resume: bool = False,
) -> PairwiseResult:
    """Train on ``train``; the best model by ``monitor`` (or the last, without ``validate``) goes to
    ``out_dir/model``."""
    out_dir, started = Path(out_dir), time.perf_counter()
    set_seed(seed)
    if len(train) < cfg.batch_size:
        raise TrainingError(f"{stage}: {len(train)} training pairs, fewer than one batch of {cfg.batch_size}")

    loop = TrainingLoop(
        stage, out_dir, log, logging, cfg, hint="Try a lower learning rate or check the pairs.", started=started
    )
    accelerator, rank, world = loop.accelerator, loop.rank, loop.world
    require_divisible("train.batch_size", cfg.batch_size, world)
    model, optimizer, scheduler = loop.prepare(model, cfg.optim, cfg.max_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    state = {"best_monitored": None, "evals_without_improvement": 0, "train_loss": math.nan}
    first_step = loop.resume(resume, state)

    def micro_batch(step: int, i: int) -> Batch:
        rows = micro_batch_rows(len(train), cfg.batch_size, seed, (step - 1) * cfg.grad_accum_steps + i)
        batch = {k: v.to(accelerator.device) for k, v in pair_batch(train, rows[rank::world]).items()}
        chosen_tokens, _ = split_pair_outputs(batch["loss_mask"].sum(dim=1))
        batch["chosen_tokens"] = (global_sum(accelerator, chosen_tokens.sum()) / world).clamp(min=1).float()
        return batch

    def train_step(step: int) -> str:
        batches = (micro_batch(step, i) for i in range(cfg.grad_accum_steps))
        check = partial(loop.require_finite, what="loss", step=step)
        step_loss, sums = accumulate_pair_gradients(accelerator, model, batches, cfg.grad_accum_steps, loss_fn, check)
        grad_norm = accelerator.clip_grad_norm_(trainable, cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        rank_means = mean_across_ranks(accelerator, {"loss": step_loss, **sums})
        step_loss = rank_means.pop("loss")
        state["train_loss"] = step_loss
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            loop.write(
                step, {"loss": step_loss, "lr": scheduler.get_last_lr()[0], "grad_norm": float(grad_norm)} | rank_means
            )
        return f"loss {step_loss:.4f}"

    def measure() -> dict[str, float]:
        metrics = validate(accelerator.unwrap_model(model))
        model.train()
        return metrics

    model.train()
    validation = Validation(measure, cfg.eval_every, monitor, cfg.patience) if validate is not None else None
    loop.run(first_step, train_step, Schedule.of(cfg), state, trainable, validation=validation,
             export=lambda: export(accelerator.unwrap_model(model), loop.model_dir))  # fmt: skip
    return PairwiseResult(
        model_dir=loop.model_dir,
        steps=loop.last_step,
        train_loss=state["train_loss"],
        monitor=monitor.metric,
        best_monitored=state["best_monitored"],
        stopped_early=loop.stopped_early,
        seconds=time.perf_counter() - started,
    )
