"""Environments: multi-turn episodes (reset -> observation; step(reply) -> observation, reward, done, info)."""

from redraft.envs.base import Environment, Episode, SingleTurnEnv, StepResult, Turn, check_replies, task_verifier
from redraft.envs.self_correction import DEFAULT_INSTRUCTION, SelfCorrectionEnv

__all__ = [
    "DEFAULT_INSTRUCTION", "Environment", "Episode", "SelfCorrectionEnv", "SingleTurnEnv", "StepResult", "Turn",
    "check_replies", "task_verifier",
]  # fmt: skip
