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
