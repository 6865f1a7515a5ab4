"""The environment API and the episode record.

An environment runs one episode: ``reset(example)`` returns the first observation (the prompt
text), then ``step(reply)`` takes the policy's reply and returns the next observation, a reward,
whether the episode is done, and free-form info. Users subclass :class:`Environment`; a
single-turn task is the one-step case (:class:`SingleTurnEnv`).

A finished :class:`Episode` becomes one token sequence: observation tokens (no loss) and reply
tokens (the policy's actions) alternate; ``action_mask`` marks the replies and ``turn_ids``
says which turn every token belongs to, so rewards can be credited per turn.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redraft.tasks.base import Example, Task

RewardFn = Callable[..., list[float]]


@dataclass
class StepResult:
    observation: str | None  # text shown before the next reply; None once done
    reward: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


class Environment:
    """Subclass and implement :meth:`reset` and :meth:`step`. ``max_turns`` bounds an episode."""

    max_turns: int = 1

    def reset(self, example: Example) -> str:
        raise NotImplementedError

    def step(self, reply: str) -> StepResult:
        raise NotImplementedError

    @classmethod
    def step_batch(cls, envs: Sequence[Environment], replies: Sequence[str]) -> list[StepResult]:
        """Step many episodes at once; override to batch expensive rewards (e.g. a sandbox)."""
        return [env.step(reply) for env, reply in zip(envs, replies)]


class SingleTurnEnv(Environment):
    """One prompt, one reply, one reward: ``reward_fn(prompts, completions, answer=[...], **example
    fields) -> list[float]``, by default the reward ``task.reward`` names (the checker: 1.0 / 0.0)."""

    max_turns = 1

    def __init__(self, task: Task, reward_fn: RewardFn | None = None):
        self.task = task
        self.reward_fn = reward_fn or task_reward(task)
        task_verifier(task)
        self.example: Example | None = None
        self.prompt = ""

    def reset(self, example: Example) -> str:
        self.example = example
        self.prompt = self.task.prompt(example)
        return self.prompt

    def step(self, reply: str) -> StepResult:
        return self.step_batch([self], [reply])[0]

    @classmethod
    def step_batch(cls, envs: Sequence[SingleTurnEnv], replies: Sequence[str]) -> list[StepResult]:
        rewards, verdicts = judge_replies(envs, replies)
        return [StepResult(None, reward, True, {"correct": correct}) for reward, correct in zip(rewards, verdicts)]


def task_reward(task: Task) -> RewardFn | None:
    """The reward ``task.reward`` names, built on first use (None: the task's checker)."""
    if task.reward_fn is None and task.reward != "checker":
        from redraft.rewards.named import reward_from_spec  # math-verify and the sandbox load only when named

        task.reward_fn = reward_from_spec(task.reward, task.match)
    return task.reward_fn


def task_verifier(task: Task) -> None:
    """Give a task whose checker runs code (``match: code``) its sandbox verifier, once; the tasks
    layer cannot import the sandbox, so environments and evaluation install it."""
    if task.match != "code" or task.verifier is not None:
        return
    from redraft.rewards.named import code_task_reward  # the sandbox loads only for code tasks
    from redraft.tasks.code import code_fields

    passes = code_task_reward()

    def verify(completions: list[str], examples: list[Example]) -> list[bool]:
        prompts = [task.prompt(example) for example in examples]
        scores = passes(prompts, completions, answer=[example.answer for example in examples], **code_fields(examples))
        return [score == 1.0 for score in scores]

    task.verifier = verify


def check_replies(envs: Sequence[SingleTurnEnv], replies: Sequence[str]) -> list[bool]:
    """Each reply's checker verdict, one batched check per task (a sandbox or math-verify batch runs once)."""
    verdicts: list[bool] = [False] * len(envs)
    by_task: dict[int, list[int]] = {}
    for i, env in enumerate(envs):
        by_task.setdefault(id(env.task), []).append(i)
    for rows in by_task.values():
        task = envs[rows[0]].task
        if not task.has_answers and getattr(envs[rows[0]], "reward_fn", None) is not None:
            continue  # nothing to check against; the custom reward alone scores the replies
        task_verifier(task)
        for i, verdict in zip(rows, task.check_many([replies[i] for i in rows], [envs[i].example for i in rows])):
            verdicts[i] = verdict
    return verdicts


def judge_replies(envs: Sequence[SingleTurnEnv], replies: Sequence[str]) -> tuple[list[float], list[bool]]:
    """Rewards and checker verdicts; with the checker as the reward, it runs once for both."""
    verdicts = check_replies(envs, replies)
    if not envs or envs[0].reward_fn is None:
        return [float(v) for v in verdicts], verdicts
    return score_replies(envs, replies), verdicts


def score_replies(envs: Sequence[SingleTurnEnv], replies: Sequence[str]) -> list[float]:
    """One batched call of the environments' reward: the checker (1.0 / 0.0) or their ``reward_fn``.

    Works for any environment with ``task``, ``example``, ``prompt`` and ``reward_fn`` attributes;
    all ``envs`` share one ``reward_fn``.
    """
    if not envs:
        return []
    reward_fn = envs[0].reward_fn
    if reward_fn is None:
        return [float(v) for v in check_replies(envs, replies)]
    fields: dict[str, list[Any]] = {"answer": [env.example.answer for env in envs]}
    for key in envs[0].example.fields:
        fields[key] = [env.example.fields.get(key) for env in envs]
    return [float(r) for r in reward_fn(prompts=[env.prompt for env in envs], completions=list(replies), **fields)]


@dataclass
class Turn:
    observation_ids: list[int]  # tokens shown before this reply (the prompt, for turn 0)
    reply_ids: list[int]
    reply_logprobs: list[float]
    reply_text: str
    finish_reason: str
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Episode:
    example: Example
    turns: list[Turn] = field(default_factory=list)

    @property
    def total_reward(self) -> float:
        return sum(turn.reward for turn in self.turns)

    def token_ids(self) -> list[int]:
        return [t for turn in self.turns for t in (*turn.observation_ids, *turn.reply_ids)]

    def action_mask(self) -> list[int]:
        return [m for turn in self.turns for m in ([0] * len(turn.observation_ids) + [1] * len(turn.reply_ids))]

    def logprobs(self) -> list[float]:
        return [lp for turn in self.turns for lp in ([0.0] * len(turn.observation_ids) + turn.reply_logprobs)]

    def turn_ids(self) -> list[int]:
        return [i for i, turn in enumerate(self.turns) for _ in range(len(turn.observation_ids) + len(turn.reply_ids))]
