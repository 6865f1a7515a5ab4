"""Custom tasks from local JSONL or Parquet files.

Each record needs a question field (``prompt`` by default) and an ``answer`` field; an optional
completion field gives the SFT target text (default: the answer). Every column but ``prompt``,
``completion`` and ``answer`` (mapped ones included) is kept in ``Example.fields`` and reaches reward
functions under its own name. Without ``test_path`` the test and
validation splits are carved off the training file by seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redraft.config import TaskConfig
from redraft.errors import DataError
from redraft.tasks.base import Example, Task


# Every other column reaches rewards under its own name, mapped ones included, as TRL passes dataset
# columns to rewards (all but prompt and completion; the answer is passed as ``answer`` anyway).
NOT_REWARD_COLUMNS = frozenset({"prompt", "completion", "answer"})


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, JSON object) for every non-blank line, streamed; a bad line raises DataError naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"file not found: {path}")
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield number, record


def _validate_jsonl(path: Path, required: list[str]) -> None:
    """Check every line before `datasets` sees the file, so errors name the line."""
    records = 0
    for number, record in iter_jsonl(path):
        _check_record(record, required, f"{path}:{number}")
        records += 1
    if not records:
        raise DataError(f"{path}: no records (the file is empty)")


def _check_record(record: dict[str, Any], required: list[str], where: str) -> None:
    for name in required:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: missing or empty field '{name}'")


def read_examples(path: str | Path, cfg: TaskConfig) -> list[Example]:
    from datasets import load_dataset

    path = Path(path)
    if not path.is_file():
        raise DataError(f"task file not found: {path}")
    required = [cfg.prompt_field, cfg.answer_field]
    if path.suffix == ".parquet":
        builder = "parquet"
    elif path.suffix in {".jsonl", ".json"}:
        builder = "json"
        _validate_jsonl(path, required)
    else:
        raise DataError(f"{path}: unsupported task file type (use .jsonl or .parquet)")
    try:
        dataset = load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:  # datasets raises many types for unreadable files
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    examples = []
    for row_number, record in enumerate(dataset, start=1):
        _check_record(record, required, f"{path}: row {row_number}")
        completion = record.get(cfg.completion_field) if cfg.completion_field else None
        examples.append(
            Example(
                question=str(record[cfg.prompt_field]),
                answer=str(record[cfg.answer_field]),
                completion=None if completion is None else str(completion),
                fields={k: v for k, v in record.items() if k not in NOT_REWARD_COLUMNS},
            )
        )
    return examples


def file_task(cfg: TaskConfig) -> Task:
    examples = read_examples(cfg.train_path, cfg)
    random.Random(cfg.seed).shuffle(examples)
    if cfg.test_path:
        test = read_examples(cfg.test_path, cfg)[: cfg.test_size]
    else:
        cut = min(cfg.test_size, len(examples) // 5)
        test, examples = examples[:cut], examples[cut:]
    val_size = min(cfg.val_size, len(examples) // 10)
    val, train = examples[:val_size], examples[val_size:]
    if not train:
        raise DataError(f"{cfg.train_path}: no training examples left after the test/val split")
    return Task(
        name=Path(cfg.train_path).stem,
        train=train[: cfg.train_size],
        val=val,
        test=test,
        template=cfg.template,
        match=cfg.match,
        few_shot=cfg.few_shot,
    )
