"""Built-in synthetic arithmetic: deterministic by seed, difficulty knobs, disjoint splits."""

from __future__ import annotations

import random

from redraft.config import TaskConfig
from redraft.errors import ConfigError
from redraft.tasks.base import Example, Task


def _operand(rng: random.Random, min_digits: int, max_digits: int) -> int:
    digits = rng.randint(min_digits, max_digits)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def _problem(rng: random.Random, cfg: TaskConfig) -> Example:
    operands = [_operand(rng, cfg.min_digits, cfg.max_digits) for _ in range(cfg.num_operands)]
    ops = [rng.choice(cfg.ops) for _ in range(cfg.num_operands - 1)]
    question = str(operands[0]) + "".join(f"{op}{value}" for op, value in zip(ops, operands[1:]))
    value = eval(question, {"__builtins__": {}})  # noqa: S307 - digits and + - * only, built here
    # Reverse order (least significant digit first) is far easier for tiny models; the
    # expected output is then the reversed digit string.
    answer = str(value)[::-1] if cfg.reverse_answer else str(value)
    return Example(question=question, answer=answer, fields={"value": value})


def _draw_unique(rng: random.Random, cfg: TaskConfig, count: int, taken: set[str], what: str) -> list[Example]:
    examples: list[Example] = []
    attempts = 0
    while len(examples) < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise ConfigError(
                f"task: cannot draw {count} distinct {what} problems with {cfg.min_digits}-{cfg.max_digits} "
                f"digits; lower the split sizes or raise max_digits"
            )
        example = _problem(rng, cfg)
        if example.question not in taken:
            taken.add(example.question)
            examples.append(example)
    return examples


def arithmetic_task(cfg: TaskConfig) -> Task:
    """Test, then val, then train are drawn without repeats, so the splits never overlap."""
    if cfg.reverse_answer and "-" in cfg.ops:
        raise ConfigError("task: reverse_answer works with + and * only (negative results)")
    taken: set[str] = set()
    splits = {}
    for offset, (split, size) in enumerate((("test", cfg.test_size), ("val", cfg.val_size), ("train", cfg.train_size))):
        rng = random.Random(cfg.seed * 1000 + offset)
        splits[split] = _draw_unique(rng, cfg, size, taken, split)
    ops = "".join(cfg.ops)
    return Task(
        name=f"arithmetic[{ops},{cfg.min_digits}-{cfg.max_digits}d,{cfg.num_operands}ops]",
        template=cfg.template,
        match="numeric" if not cfg.reverse_answer else "exact",
        few_shot=cfg.few_shot,
        **splits,
    )
