"""A task is prompts + answer extraction + a checker, split into disjoint train/val/test sets."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from redraft.errors import ConfigError, DataError, RedraftError
from redraft.text.prompts import Message, chat_prompt, few_shot_prompt, format_prompt

NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# How a task checks an answer (task.match): the first line (exact), the first number (numeric),
# math-verify equivalence (math: '#### 72', '\boxed{}', LaTeX), or the program run against the
# example's tests in the sandbox (code; needs a verifier, see Task.verifier).
Match = Literal["exact", "numeric", "math", "code"]
# Judges a batch: (completions, examples) -> one verdict each.
Verifier = Callable[[list[str], list["Example"]], list[bool]]


@dataclass(frozen=True)
class Example:
    """One problem. Plain rows have a question (put into the task's template) and an answer; TRL's
    other row formats set ``messages`` (a chat prompt, rendered by the tokenizer's chat template)
    or ``text_only`` (a language-modelling row: no prompt, the whole text is the SFT target)."""

    question: str
    answer: str
    completion: str | None = None  # SFT target text; defaults to the answer
    fields: dict[str, Any] = field(default_factory=dict)
    # The prompt as chat messages (then ``question`` is the last user message's text, for display).
    messages: tuple[Message, ...] | None = None
    # The SFT target as chat messages (None: one assistant message holding ``target``).
    completion_messages: tuple[Message, ...] | None = None
    # SFT also trains the assistant messages inside ``messages`` (TRL's ``messages`` rows: every assistant turn).
    train_prompt_turns: bool = False
    text_only: bool = False  # TRL's ``text`` rows

    @property
    def target(self) -> str:
        return self.answer if self.completion is None else self.completion

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def conversation(self) -> tuple[tuple[Message, ...], list[bool]]:
        """A chat example's whole conversation (prompt, then target) and which messages SFT trains on."""
        if self.messages is None:
            raise RedraftError("conversation() is for chat examples (messages set)")
        target = self.completion_messages or ({"role": "assistant", "content": self.target},)
        trained = [self.train_prompt_turns and m.get("role") == "assistant" for m in self.messages]
        trained += [m.get("role") == "assistant" for m in target]
        return (*self.messages, *target), trained


def carve_splits(
    examples: list[Example],
    test: list[Example] | None,
    test_size: int,
    val_size: int,
    test_divisor: int,
    val_divisor: int,
    source: str,
) -> tuple[list[Example], list[Example], list[Example]]:
    """(test, val, train) from shuffled ``examples``: ``test`` when a test file gave it, else at most
    1/``test_divisor`` of them; then at most 1/``val_divisor`` of the rest for validation, so a small
    file always keeps problems to train on."""
    if test is None:
        cut = min(test_size, len(examples) // test_divisor)
        test, examples = examples[:cut], examples[cut:]
    val_size = min(val_size, len(examples) // val_divisor)
    val, train = examples[:val_size], examples[val_size:]
    if not train:
        raise DataError(f"{source}: no training examples left after the test/val split")
    return test, val, train


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
        raise RedraftError(
            "code answers are judged by running them against the tests (Task.check_many), not by comparison"
        )
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
    # False when the examples carry no answers (a TRL SFT file: targets only): no checker then.
    has_answers: bool = True
    # Renders chat prompts (examples with messages); use_tokenizer installs the tokenizer's chat template.
    render_chat: Callable[[tuple[Message, ...]], str] | None = field(default=None, repr=False, compare=False)

    @property
    def demonstration_examples(self) -> list[Example]:
        """The training problems whose answers supervised stages learn from (SFT, pretraining,
        Pair-SFT targets). Checker-scored stages (RL, STaR, SCoRe) draw prompts from all of
        ``train``: demonstrations are scarce, prompts and a checker are cheap."""
        return self.train if self.demonstrations is None else self.train[: self.demonstrations]

    def split(self, name: Literal["train", "val", "test"]) -> list[Example]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def is_chat(self) -> bool:
        """Whether any example's prompt is chat messages."""
        return any(ex.is_chat for split in (self.train, self.val, self.test) for ex in split)

    def use_tokenizer(self, tokenizer) -> Task:
        """Render chat prompts with ``tokenizer``'s chat template from now on (nothing to do for plain
        prompts); every command calls it once it has the model's tokenizer."""
        if self.is_chat:
            if not getattr(tokenizer, "chat_template", None):
                raise ConfigError(
                    f"task {self.name!r} has chat-message prompts, but the tokenizer has no chat template: use a "
                    "model whose tokenizer ships one (tokenizer_config.json's chat_template or chat_template.jinja)"
                )
            if self.few_shot:
                raise ConfigError("task.few_shot works with plain-text prompts only, not chat messages")
            self.render_chat = lambda messages: chat_prompt(tokenizer, messages)
        return self

    def prompt(self, example: Example) -> str:
        if example.messages is not None:
            if self.render_chat is None:
                raise RedraftError(
                    f"task {self.name!r} has chat-message prompts: "
                    "give it the tokenizer first (task.use_tokenizer(tokenizer))"
                )
            return self.render_chat(example.messages)
        if example.text_only:
            return ""
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
        if not self.has_answers:
            raise RedraftError(
                f"task {self.name!r} has no answers (its file has no answer column), so the checker cannot grade "
                "replies: add answers (task.answer_field names the column), "
                "or reward RL with task.reward='module:function'"
            )
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
        return [self._corpus_text(ex) for ex in self.demonstration_examples]

    def _corpus_text(self, ex: Example) -> str:
        if ex.text_only:
            return ex.target
        if ex.is_chat:  # the messages' text (the template belongs to the tokenizer, not yet known)
            return ex.question + ex.target
        return format_prompt(self.template, ex.question) + ex.target
