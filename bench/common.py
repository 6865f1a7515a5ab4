"""Shared set-up for the benchmarks: a tokenizer and a Llama model of a given size, built locally."""

from __future__ import annotations

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
