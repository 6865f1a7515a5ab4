"""Prompt templates, few-shot prompts and chat templates."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class _Shot(Protocol):
    question: str
    target: str


def format_prompt(template: str, question: str) -> str:
    return template.replace("{question}", question)


def few_shot_prompt(template: str, shots: Sequence[_Shot], question: str, separator: str = "\n") -> str:
    """Worked examples (prompt + answer) followed by the new question's prompt."""
    solved = [format_prompt(template, shot.question) + shot.target for shot in shots]
    return separator.join([*solved, format_prompt(template, question)])


def chat_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """Render chat messages with the tokenizer's own chat template (HF models that ship one)."""
    from redraft.errors import ConfigError

    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("this tokenizer has no chat template; use a plain prompt template instead")
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
