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


Message = dict[str, Any]  # {"role": "user" | "assistant" | "system" | ..., "content": str}


def render_chat(tokenizer: Any, messages: Sequence[Message], add_generation_prompt: bool) -> str:
    """Chat messages as text, by the tokenizer's own chat template (``tokenizer.apply_chat_template``)."""
    from redraft.errors import ConfigError

    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            "this tokenizer has no chat template, so chat messages cannot be rendered: use a model whose tokenizer "
            "ships one (tokenizer_config.json's chat_template or chat_template.jinja), or plain-text prompts"
        )
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)


def chat_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """Render chat messages with the tokenizer's own chat template, ending with the assistant's turn opening."""
    return render_chat(tokenizer, messages, add_generation_prompt=True)


def assistant_spans(
    tokenizer: Any, messages: Sequence[Message], trained: Sequence[bool]
) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of each trained assistant message in it.

    A span runs from where the template opens the message (the text after
    ``add_generation_prompt``) through the message's end marker (``<|im_end|>``, ``<|eot_id|>``),
    trailing whitespace excluded: the tokens a model must generate for that turn. It needs a template
    that renders every prefix of the conversation as a prefix of the whole (ChatML, Llama 3, Mistral,
    Gemma do; templates that rewrite earlier turns, e.g. dropping their reasoning, do not).
    """
    from redraft.errors import DataError

    full = render_chat(tokenizer, messages, add_generation_prompt=False)
    spans = []
    for index, (message, train) in enumerate(zip(messages, trained)):
        if not train:
            continue
        try:
            before = render_chat(tokenizer, messages[:index], add_generation_prompt=True)
        except Exception:  # some templates refuse an empty conversation (a first message that is the assistant's)
            if index:
                raise
            before = ""
        through = render_chat(tokenizer, messages[: index + 1], add_generation_prompt=False).rstrip()
        if not (full.startswith(before) and full.startswith(through) and len(before) < len(through)):
            raise DataError(
                f"the tokenizer's chat template renders message {index + 1} ({message.get('role')}) differently "
                "inside the whole conversation than on its own, so its tokens cannot be told apart; use "
                "prompt/completion rows (the loss then falls on the completion only)"
            )
        spans.append((len(before), len(through)))
    return full, spans
