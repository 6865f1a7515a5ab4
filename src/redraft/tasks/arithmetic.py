"""Built-in synthetic arithmetic: deterministic by seed, difficulty knobs, disjoint splits."""

from __future__ import annotations

import random

from redraft.config import TaskSection
from redraft.errors import ConfigError
from redraft.tasks.base import Example, Task


def _operand(rng: random.Random, min_digits: int, max_digits: int) -> int:
    digits = rng.randint(min_digits, max_digits)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def _answer_width(cfg: TaskSection) -> int:
    """Digits of the largest result a problem can have (for zero-padded answers)."""
    largest = 10**cfg.max_digits - 1
    products = largest**cfg.num_operands if "*" in cfg.ops else 0
    return len(str(max(cfg.num_operands * largest, products)))


def _write_answer(value: int, cfg: TaskSection) -> str:
    text = str(value).zfill(_answer_width(cfg)) if cfg.pad_digits else str(value)
    # Reverse order (least significant digit first) is far easier for tiny models; the
    # expected output is then the reversed digit string.
    return text[::-1] if cfg.reverse_answer else text


def _problem(rng: random.Random, cfg: TaskSection) -> Example:
    operands = [_operand(rng, cfg.min_digits, cfg.max_digits) for _ in range(cfg.num_operands)]
    ops = [rng.choice(cfg.ops) for _ in range(cfg.num_operands - 1)]
    expression = str(operands[0]) + "".join(f"{op}{value}" for op, value in zip(ops, operands[1:]))
    value = eval(expression, {"__builtins__": {}})  # noqa: S307 - digits and + - * only, built here
    width = cfg.max_digits if cfg.pad_digits else 1
    question = f"{operands[0]:0{width}d}" + "".join(f"{op}{v:0{width}d}" for op, v in zip(ops, operands[1:]))
    return Example(question=question, answer=_write_answer(value, cfg), fields={"value": value})


def carry_free_sum(operands: list[int]) -> int:
    """The sum written digit by digit without carrying (``58 + 67 -> 15``): the classic slip of an
    imperfect teacher."""
    width = max(len(str(v)) for v in operands)
    digits = [sum(v // 10**place % 10 for v in operands) % 10 for place in range(width)]
    return sum(d * 10**place for place, d in enumerate(digits))


def _with_teacher_slips(examples: list[Example], cfg: TaskSection) -> list[Example]:
    """Demonstrations as an imperfect teacher writes them: on ``teacher_slip_rate`` of the problems
    whose sum needs a carry, the completion is the carry-free sum. ``answer`` stays the true sum,
    so checkers (and everything graded) use the truth."""
    rng = random.Random(cfg.seed * 1000 + 7)
    slipped = []
    for example in examples:
        operands = [int(v) for v in example.question.split("+")]
        wrong = carry_free_sum(operands)
        if wrong != example.fields["value"] and rng.random() < cfg.teacher_slip_rate:
            example = Example(
                example.question,
                example.answer,
                completion=_write_answer(wrong, cfg),
                fields={**example.fields, "teacher_slip": True},
            )
        slipped.append(example)
    return slipped


def _draw_unique(rng: random.Random, cfg: TaskSection, count: int, taken: set[str], what: str) -> list[Example]:
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


def arithmetic_task(cfg: TaskSection) -> Task:
    """Test, then val, then train are drawn without repeats, so the splits never overlap."""
    for knob in ("reverse_answer", "pad_digits"):
        if getattr(cfg, knob) and "-" in cfg.ops:
            raise ConfigError(f"task: {knob} works with + and * only (negative results); set task.{knob}: false")
    taken: set[str] = set()
    splits = {}
    for offset, (split, size) in enumerate((("test", cfg.test_size), ("val", cfg.val_size), ("train", cfg.train_size))):
        rng = random.Random(cfg.seed * 1000 + offset)
        splits[split] = _draw_unique(rng, cfg, size, taken, split)
    if cfg.teacher_slip_rate:
        if cfg.ops != ["+"]:
            raise ConfigError("task: teacher_slip_rate (carry-free sums) needs ops: ['+']")
        splits["train"] = _with_teacher_slips(splits["train"], cfg)
    ops = "".join(cfg.ops)
    return Task(
        name=f"arithmetic[{ops},{cfg.min_digits}-{cfg.max_digits}d,{cfg.num_operands}ops]",
        template=cfg.template,
        match="numeric" if not cfg.reverse_answer else "exact",
        few_shot=cfg.few_shot,
        **splits,
    )
