"""Local stand-ins for chat models' tokenizers and TRL-format data (no hub downloads)."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import processors

from redraft.text.tokenizer import train_tokenizer

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# Llama 3 style: the template writes the BOS itself, and the tokenizer adds one too unless told not to.
BOS_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}<|eot|>\n{% endfor %}"
    "{% if add_generation_prompt %}[assistant] {% endif %}"
)
CORPUS = [f"{a}+{b}={a + b} user assistant system Be brief. What is" for a in range(30) for b in range(0, 30, 3)]


def chatml_tokenizer(eos_is_end_of_turn: bool = False):
    """A small byte-level BPE with ChatML special tokens and template (EOS stays '</s>' unless
    ``eos_is_end_of_turn``, as for a base model's tokenizer)."""
    tokenizer = train_tokenizer(CORPUS, vocab_size=300)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHATML
    if eos_is_end_of_turn:
        tokenizer.eos_token = "<|im_end|>"
    return tokenizer


def bos_tokenizer():
    """A tokenizer that adds BOS to every encoding and whose chat template writes BOS as well."""
    tokenizer = train_tokenizer(CORPUS, vocab_size=300)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|eot|>"]})
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tokenizer.bos_token_id)]
    )
    tokenizer.chat_template = BOS_TEMPLATE
    return tokenizer


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return str(path)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def sums(n: int = 40) -> list[tuple[str, str]]:
    return [(f"What is {a}+{a + 1}?", str(2 * a + 1)) for a in range(n)]


def trl_rows(kind: str, n: int = 40) -> list[dict]:
    """Rows of one of TRL's dataset formats."""
    rows = []
    for question, answer in sums(n):
        rows.append(
            {
                "text": {"text": f"{question} {answer}"},
                "prompt_completion": {"prompt": question, "completion": answer},
                "messages": {
                    "messages": [{"role": "system", "content": "Be brief."}, user(question), assistant(answer)]
                },
                "chat_prompt_completion": {"prompt": [user(question)], "completion": [assistant(answer)]},
                "chat_prompt_only": {"prompt": [user(question)], "answer": answer},
            }[kind]
        )
    return rows


def trl_pairs(kind: str, n: int = 24) -> list[dict]:
    """Preference rows: standard, conversational, and both with an implicit prompt."""
    rows = []
    for question, answer in sums(n):
        wrong = str(int(answer) + 5)  # never starts with the answer (an implicit prompt needs them to part)
        rows.append(
            {
                "standard": {"prompt": question, "chosen": " " + answer, "rejected": " " + wrong},
                "conversational": {
                    "prompt": [user(question)],
                    "chosen": [assistant(answer)],
                    "rejected": [assistant(wrong)],
                },
                "implicit": {"chosen": f"{question} {answer}", "rejected": f"{question} {wrong}"},
                "implicit_conversational": {
                    "chosen": [user(question), assistant(answer)],
                    "rejected": [user(question), assistant(wrong)],
                },
            }[kind]
        )
    return rows
