"""A task is prompts + answer extraction + a checker, split into disjoint train/val/test sets."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redraft.text.prompts import few_shot_prompt, format_prompt

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Example:
    question: str
    answer: str
    completion: str | None = None  # SFT target text; defaults to the answer
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.answer if self.completion is None else self.completion


def extract_answer(completion: str, match: Literal["exact", "numeric"]) -> str | None:
    """The answer a completion commits to: its first line (exact) or first number (numeric)."""
    if match == "numeric":
        found = NUMBER.search(completion)
        return found.group(0) if found else None
    stripped = completion.strip()
    return stripped.splitlines()[0].strip() if stripped else None


def answers_match(predicted: str | None, expected: str, match: Literal["exact", "numeric"]) -> bool:
    if predicted is None:
        return False
    if match == "numeric":
        try:
            return float(predicted) == float(expected)
        except ValueError:
            return False
    return predicted.strip() == expected.strip()


@dataclass
class Task:
    """Splits of examples plus how to prompt for them and how to check an answer."""

    name: str
    train: list[Example]
    val: list[Example]
    test: list[Example]
    template: str = "{question}="
    match: Literal["exact", "numeric"] = "numeric"
    few_shot: int = 0
    # How many training problems come with a worked answer (None: all of them); see demonstration_examples.
    demonstrations: int | None = None
    # What RL rewards, as task.reward names it ("checker": check() below); envs.task_reward builds it once.
    reward: str | dict[str, float] = "checker"
    reward_fn: Callable[..., list[float]] | None = field(default=None, repr=False, compare=False)

    @property
    def demonstration_examples(self) -> list[Example]:
        """The training problems whose answers supervised stages learn from (SFT, pretraining,
        Pair-SFT targets). Checker-scored stages (RL, STaR, SCoRe) draw prompts from all of
        ``train``: demonstrations are scarce, prompts and a checker are cheap."""
        return self.train if self.demonstrations is None else self.train[: self.demonstrations]

    def split(self, name: Literal["train", "val", "test"]) -> list[Example]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    def prompt(self, example: Example) -> str:
        if self.few_shot:
            shots = self.train[: self.few_shot]
            return few_shot_prompt(self.template, shots, example.question)
        return format_prompt(self.template, example.question)

    def extract(self, completion: str) -> str | None:
        return extract_answer(completion, self.match)

    def check(self, completion: str, example: Example) -> bool:
        return answers_match(self.extract(completion), example.answer, self.match)

    def corpus(self) -> list[str]:
        """Pretraining text: each demonstration written out with its answer."""
        return [format_prompt(self.template, ex.question) + ex.target for ex in self.demonstration_examples]
