"""Shared set-up for the benchmarks: a tokenizer and a Llama model of a given size, built locally."""

from __future__ import annotations

import statistics
import time

import torch

from redraft.config import ModelSection, TaskSection
from redraft.models import build_model
from redraft.tasks import build_task
from redraft.text.tokenizer import train_tokenizer


def bench_setup(preset: str = "small", seed: int = 0, train_size: int = 4096):
    torch.manual_seed(seed)
    task = build_task(TaskSection(train_size=train_size, test_size=1024, val_size=0))
    tokenizer = train_tokenizer(task.corpus())
    model = build_model(ModelSection(preset=preset), tokenizer)
    return task, tokenizer, model


def main_job_task():
    """The main job's task (the built-in defaults), whose prompts the main job's SFT model answers."""
    from redraft.config import load_config

    return build_task(load_config("run").task)


def matmul_rate(
    threads: int, tokens: int, hidden: int, mlp: int, vocab: int, repeats: int = 5, dtype: torch.dtype = torch.float32
) -> float:
    """FLOP/s (fp32 unless ``dtype``) of this model's matmul shapes (q/k/v/o, gate/up/down, LM head) at `tokens`
    rows."""
    torch.set_num_threads(threads)
    shapes = [(hidden, 3 * hidden), (hidden, hidden), (hidden, 2 * mlp), (mlp, hidden), (hidden, vocab)]
    mats = [(torch.randn(tokens, k, dtype=dtype), torch.randn(k, n, dtype=dtype)) for k, n in shapes]
    flops = sum(2 * tokens * k * n for k, n in shapes)
    best = float("inf")
    for _ in range(repeats + 1):
        start = time.perf_counter()
        for a, b in mats:
            torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return flops / best


def ratio_spread(ratios: list[float]) -> dict:
    """Per-round ratios: their median, min, max and each round's, so one disturbed round cannot move the result."""
    return {
        "median": round(statistics.median(ratios), 2),
        "min": round(min(ratios), 2),
        "max": round(max(ratios), 2),
        "per_round": [round(r, 2) for r in ratios],
    }


def interleaved_rounds(contenders: dict, rounds: int) -> dict[str, list[float]]:
    """Each contender (a no-argument callable returning its seconds) once per round after one warm-up call, the
    order reversed every other round so drifts in machine speed hit all alike; each one's seconds per round."""
    for run in contenders.values():
        run()
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    for index in range(rounds):
        for name in names if index % 2 == 0 else names[::-1]:
            seconds[name].append(contenders[name]())
    return seconds


def trl_settings(out: str, batch_rows: int, lr: float, seed: int, gradient_checkpointing: bool) -> dict:
    """The TRL trainer arguments every bench sets alike: redraft's optimizer (AdamW, β2 0.95, clip 1.0, constant
    lr, no decay), sampling at T = 1, CPU fp32, and no logging, saving or evaluation inside the timed loop."""
    return dict(
        output_dir=out,
        per_device_train_batch_size=batch_rows,
        gradient_accumulation_steps=1,
        learning_rate=lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        temperature=1.0,
        logging_steps=10**6,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        fp16=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=seed,
        gradient_checkpointing=gradient_checkpointing,
    )


def train_trl_grpo(model: str, reward, data, tokenizer, callback, settings: dict, **grpo) -> None:
    """TRL's GRPOTrainer on ``data`` (prompt and answer columns) with ``reward``, ``settings`` (``trl_settings``
    without output_dir) and GRPO's own keys; ``callback`` times or evaluates it. β = 0 and one pass per batch,
    as redraft's GRPO runs in the benches."""
    import tempfile

    from trl import GRPOConfig, GRPOTrainer

    with tempfile.TemporaryDirectory() as out:
        config = GRPOConfig(**trl_settings(out, **settings), beta=0.0, num_iterations=1, log_completions=False, **grpo)
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=reward,
            args=config,
            train_dataset=data,
            processing_class=tokenizer,
            callbacks=[callback],
        )
        trainer.train()
