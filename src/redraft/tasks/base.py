"""A task is prompts + answer extraction + a checker, split into disjoint train/val/test sets."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redraft.errors import RedraftError
from redraft.text.prompts import few_shot_prompt, format_prompt

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# How a task checks an answer (task.match): the first line (exact), the first number (numeric),
# math-verify equivalence (math: '#### 72', '\boxed{}', LaTeX), or the program run against the
# example's tests in the sandbox (code; needs a verifier, see Task.verifier).
Match = Literal["exact", "numeric", "math", "code"]
# Judges a batch: (completions, examples) -> one verdict each.
Verifier = Callable[[list[str], list["Example"]], list[bool]]


@dataclass(frozen=True)
class Example:
    question: str
    answer: str
    completion: str | None = None  # SFT target text; defaults to the answer
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> str:
        return self.answer if self.completion is None else self.completion


def extract_answer(completion: str, match: Match) -> str | None:
    """The answer a completion commits to: its first line (exact), first number (numeric), final
    answer (math: after '####', else the last \\boxed{} or number) or its text (code)."""
    if match == "math":
        from redraft.tasks.math_answers import final_answer

        return final_answer(completion)
    if match == "code":
        return completion.strip() or None
    if match == "numeric":
        found = NUMBER.search(completion)
        return found.group(0) if found else None
    stripped = completion.strip()
    return stripped.splitlines()[0].strip() if stripped else None


def answers_match(predicted: str | None, expected: str, match: Match) -> bool:
    if match == "code":
        raise RedraftError("code answers are judged by running them against the tests (Task.check_many), not by comparison")
    if predicted is None:
        return False
    if match == "math":
        from redraft.tasks.math_answers import math_score

        return math_score(expected, predicted) == 1.0
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
    match: Match = "numeric"
    few_shot: int = 0
    # How many training problems come with a worked answer (None: all of them); see demonstration_examples.
    demonstrations: int | None = None
    # What RL rewards, as task.reward names it ("checker": check() below); envs.task_reward builds it once.
    reward: str | dict[str, float] = "checker"
    reward_fn: Callable[..., list[float]] | None = field(default=None, repr=False, compare=False)
    # Batched verdicts for a match the tasks layer cannot judge itself ("code": the sandbox lives in
    # redraft.rewards); envs.task_verifier installs it on first use (every environment does).
    verifier: Verifier | None = field(default=None, repr=False, compare=False)

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
        return self.check_many([completion], [example])[0]

    def check_many(self, completions: list[str], examples: list[Example]) -> list[bool]:
        """One verdict per completion; batched, so a sandbox or math-verify child process runs once."""
        if len(completions) != len(examples):
            raise ValueError(f"check_many got {len(completions)} completions for {len(examples)} examples")
        if not completions:
            return []
        if self.verifier is not None:
            return [bool(v) for v in self.verifier(list(completions), list(examples))]
        if self.match == "code":
            raise RedraftError(
                f"task {self.name!r} is checked by running code in the sandbox: build its verifier first "
                "(redraft.envs.task_verifier(task); environments and evaluation do it)"
            )
        if self.match == "math":
            from redraft.tasks.math_answers import math_scores

            return [s == 1.0 for s in math_scores([(ex.answer, c) for c, ex in zip(completions, examples)])]
        return [answers_match(self.extract(c), ex.answer, self.match) for c, ex in zip(completions, examples)]

    def corpus(self) -> list[str]:
        """Pretraining text: each demonstration written out with its answer."""
        return [format_prompt(self.template, ex.question) + ex.target for ex in self.demonstration_examples]
