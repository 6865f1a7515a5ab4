"""Environments: multi-turn episodes (reset -> observation; step(reply) -> observation, reward, done, info)."""

from redraft.envs.base import Environment, Episode, SingleTurnEnv, StepResult, Turn

__all__ = ["Environment", "Episode", "SingleTurnEnv", "StepResult", "Turn"]
