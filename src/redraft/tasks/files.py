"""Custom tasks from local JSONL or Parquet files, in redraft's format or TRL's.

redraft's rows have a question field (``prompt`` by default) and an ``answer`` field; an optional
completion field gives the SFT target text (default: the answer). TRL's dataset formats load as
they are, told apart by their columns:

- ``prompt`` / ``completion`` strings (no ``answer`` column: the completion is the SFT target and
  there is no checker); a ``prompt`` alone is a prompt-only row (RL with a custom reward);
- ``prompt`` as a list of chat messages (``[{"role": ..., "content": ...}]``), with ``completion``
  messages or none: rendered by the tokenizer's chat template, the loss on the completion;
- ``messages``: a whole conversation; the prompt is everything before the last assistant message,
  and SFT trains on every assistant message;
- ``text``: language-modelling rows, the whole text is the target.

Every other column (``answer`` aside; mapped ones included) is kept in ``Example.fields`` and
reaches reward functions under its own name. Without ``test_path`` the test and validation splits
are carved off the training file by seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redraft.config import TaskSection
from redraft.errors import DataError, warn
from redraft.tasks.base import Example, Task, carve_splits

# Every other column reaches rewards under its own name, mapped ones included, as TRL passes dataset
# columns to rewards (all but prompt and completion; the answer is passed as ``answer`` anyway).
NOT_REWARD_COLUMNS = frozenset({"prompt", "completion", "answer"})
TRL_COMPLETION = "completion"  # TRL's completion column, the SFT target when the file has no answers
MESSAGES, TEXT = "messages", "text"  # TRL's conversational and language-modelling columns


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
                raise DataError(
                    f"{path}:{number}: not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield number, record


class _Format:
    """How a file's rows read, decided once from its columns (the union over all rows)."""

    def __init__(self, columns: set[str], cfg: TaskSection, where: str):
        self.prompt, self.answer = cfg.prompt_field, cfg.answer_field
        self.has_answers = self.answer in columns
        if self.prompt in columns:
            self.kind = "prompt"
        elif MESSAGES in columns:
            self.kind = "messages"
        elif TEXT in columns:
            self.kind = "text"
        elif {"chosen", "rejected"} <= columns:
            raise DataError(
                f"{where}: chosen/rejected rows are preference pairs: give the file to `redraft dpo train` or "
                "`redraft rm train` (--pairs), not as a task"
            )
        else:
            raise DataError(f"{where}: missing or empty field '{self.prompt}' (nor TRL's 'messages' or 'text' column)")
        # The SFT target: the configured completion column; else TRL's 'completion' when the file has no answers.
        self.completion = cfg.completion_field
        if self.completion is None and TRL_COMPLETION in columns and self.kind == "prompt" and not self.has_answers:
            self.completion = TRL_COMPLETION
        self.unused_completions = 0  # plain rows whose 'completion' is ignored for the answer (as it always was)
        self.consumed = {MESSAGES} if self.kind == "messages" else {TEXT} if self.kind == "text" else set()

    def required(self) -> list[str]:
        main = {"prompt": self.prompt, "messages": MESSAGES, "text": TEXT}[self.kind]
        return [main, self.answer] if self.has_answers else [main]

    def example(self, record: dict[str, Any], where: str) -> Example:
        _check_record(record, self.required(), where)
        answer = str(record[self.answer]) if self.has_answers else ""
        fields = {k: v for k, v in record.items() if k not in NOT_REWARD_COLUMNS and k not in self.consumed}
        if self.kind == "text":
            text = record[TEXT]
            if not isinstance(text, str):
                raise DataError(f"{where}: '{TEXT}' must be a string, got {type(text).__name__}")
            return Example(question="", answer=answer, completion=text, fields=fields, text_only=True)
        if self.kind == "messages":
            messages = chat_messages(record[MESSAGES], where, MESSAGES)
            last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=None)
            if last is None:
                raise DataError(f"{where}: '{MESSAGES}' has no assistant message to learn from")
            prompt, target = messages[:last], messages[last:]
            return Example(
                question=_last_user_text(prompt),
                answer=answer,
                completion=_text_of(target),
                fields=fields,
                messages=prompt,
                completion_messages=target,
                train_prompt_turns=True,
            )
        raw_prompt = record[self.prompt]
        completion = record.get(self.completion) if self.completion else None
        if isinstance(raw_prompt, list):
            prompt = chat_messages(raw_prompt, where, self.prompt)
            target = None
            if isinstance(completion, list):
                target = chat_messages(completion, where, self.completion)
                completion = _text_of(target)
            elif self.completion is None and record.get(TRL_COMPLETION) is not None:  # TRL's completion column
                value = record[TRL_COMPLETION]
                target = chat_messages(value, where, TRL_COMPLETION) if isinstance(value, list) else None
                completion = _text_of(target) if target else str(value)
            return Example(
                question=_last_user_text(prompt),
                answer=answer,
                completion=None if completion is None else str(completion),
                fields=fields,
                messages=prompt,
                completion_messages=target,
            )
        if isinstance(raw_prompt, (dict, list)) or isinstance(completion, (dict, list)):
            name = self.prompt if isinstance(raw_prompt, (dict, list)) else self.completion
            raise DataError(
                f"{where}: '{name}' is a {type(record[name]).__name__}: a prompt is a string or a list of chat "
                "messages ({'role': ..., 'content': ...}), a completion a string or messages after message prompts"
            )
        if self.completion is None and record.get(TRL_COMPLETION) is not None:
            self.unused_completions += 1
        return Example(
            question=str(raw_prompt),
            answer=answer,
            completion=None if completion is None else str(completion),
            fields=fields,
        )


def chat_messages(value: Any, where: str, name: str) -> tuple[dict[str, Any], ...]:
    """A list of chat messages, checked: each a mapping with a string role and string content."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: '{name}' must be a non-empty list of chat messages, got {value!r:.80}")
    messages = []
    for number, message in enumerate(value, start=1):
        if not isinstance(message, dict):
            raise DataError(
                f"{where}: '{name}' message {number} must be a mapping with 'role' and 'content', got {message!r:.80}"
            )
        # Parquet / datasets give every message the keys of all messages: drop the empty ones.
        message = {k: v for k, v in message.items() if v is not None}
        if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            raise DataError(
                f"{where}: '{name}' message {number} needs a string 'role' and a string 'content' (multimodal content "
                f"parts are not supported), got {message!r:.80}"
            )
        messages.append(message)
    return tuple(messages)


def _last_user_text(messages: tuple[dict[str, Any], ...]) -> str:
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else (messages[-1]["content"] if messages else "")


def _text_of(messages: tuple[dict[str, Any], ...]) -> str:
    return "\n".join(m["content"] for m in messages if m["role"] == "assistant")


def _check_record(record: dict[str, Any], required: list[str], where: str) -> None:
    for name in required:
        value = record.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise DataError(f"{where}: missing or empty field '{name}'")


def _jsonl_format(path: Path, cfg: TaskSection) -> _Format:
    """Check every line before `datasets` sees the file, so errors name the line."""
    columns: set[str] = set()
    for _, record in iter_jsonl(path):
        columns |= set(record)
    if not columns:
        raise DataError(f"{path}: no records (the file is empty)")
    form = _Format(columns, cfg, str(path))
    for number, record in iter_jsonl(path):
        form.example(record, f"{path}:{number}")
    return form


def read_examples(path: str | Path, cfg: TaskSection) -> list[Example]:
    return read_task_file(path, cfg)[0]


def read_task_file(path: str | Path, cfg: TaskSection) -> tuple[list[Example], bool]:
    """The file's examples, and whether they carry answers (a checker can grade them)."""
    from datasets import load_dataset

    path = Path(path)
    if not path.is_file():
        raise DataError(f"task file not found: {path}")
    if path.suffix == ".parquet":
        builder = "parquet"
    elif path.suffix in {".jsonl", ".json"}:
        builder = "json"
        _jsonl_format(path, cfg)
    else:
        raise DataError(f"{path}: unsupported task file type (use .jsonl or .parquet)")
    try:
        dataset = load_dataset(builder, data_files=str(path), split="train")
    except Exception as exc:  # datasets raises many types for unreadable files
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from None
    if not len(dataset):
        raise DataError(f"{path}: no records (the file is empty)")
    form = _Format(set(dataset.column_names), cfg, str(path))
    examples = [form.example(record, f"{path}: row {n}") for n, record in enumerate(dataset, start=1)]
    if form.unused_completions:
        warn(
            f"{path} has a '{TRL_COMPLETION}' column and an '{cfg.answer_field}' column, and task.completion_field "
            f"is not set: SFT trains on the {cfg.answer_field}s; set task.completion_field={TRL_COMPLETION} to "
            "train on the completions"
        )
    return examples, form.has_answers


def file_task(cfg: TaskSection) -> Task:
    examples, has_answers = read_task_file(cfg.train_path, cfg)
    random.Random(cfg.seed).shuffle(examples)
    test = None
    if cfg.test_path:
        test, test_answers = read_task_file(cfg.test_path, cfg)
        test, has_answers = test[: cfg.test_size], has_answers and test_answers
    test, val, train = carve_splits(examples, test, cfg.test_size, cfg.val_size, 5, 10, cfg.train_path)
    return Task(
        name=Path(cfg.train_path).stem,
        train=train[: cfg.train_size],
        val=val,
        test=test,
        template=cfg.template,
        match=cfg.match,
        few_shot=cfg.few_shot,
        has_answers=has_answers,
    )
