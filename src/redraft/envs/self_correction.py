"""Self-correction (SCoRe): the model answers, then sees a correction instruction and answers again.

The episode's context grows turn by turn: prompt, attempt 1, the instruction (which may restate the
problem through ``{prompt}`` / ``{question}``), attempt 2, ... The instruction is the same whatever
attempt 1 was, so it never reveals whether attempt 1 was right. Every attempt is checked with the
task's checker (or a reward function) and its reward lands on that attempt's tokens; with
``reward_turns="last"`` only the final attempt is rewarded (naive multi-turn RL), while
``info["correct"]`` still records every attempt's verdict for the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from redraft.config import DEFAULT_INSTRUCTION
from redraft.envs.base import Environment, RewardFn, StepResult, judge_replies, task_reward, task_verifier
from redraft.tasks.base import Example, Task


class SelfCorrectionEnv(Environment):
    def __init__(
        self,
        task: Task,
        attempts: int = 2,
        instruction: str = DEFAULT_INSTRUCTION,
        reward_fn: RewardFn | None = None,
        reward_turns: Literal["all", "last"] = "all",
    ):
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.task = task
        self.max_turns = attempts
        self.instruction = instruction
        self.reward_fn = reward_fn or task_reward(task)
        task_verifier(task)
        self.reward_turns = reward_turns
        self.example: Example | None = None
        self.prompt = ""
        self.attempt = 0

    def reset(self, example: Example) -> str:
        self.example = example
        self.prompt = self.task.prompt(example)
        self.attempt = 0
        return self.prompt

    def correction_prompt(self) -> str:
        return self.instruction.format(prompt=self.prompt, question=self.example.question)

    def step(self, reply: str) -> StepResult:
        return self.step_batch([self], [reply])[0]

    @classmethod
    def step_batch(cls, envs: Sequence[SelfCorrectionEnv], replies: Sequence[str]) -> list[StepResult]:
        rewards, verdicts = judge_replies(envs, replies)
        results = []
        for env, reward, correct in zip(envs, rewards, verdicts):
            env.attempt += 1
            done = env.attempt >= env.max_turns
            if env.reward_turns == "last" and not done:
                reward = 0.0
            info = {"correct": correct, "attempt": env.attempt}
            results.append(StepResult(None if done else env.correction_prompt(), reward, done, info))
        return results
