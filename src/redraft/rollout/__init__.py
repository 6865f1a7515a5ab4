"""Rollouts: batched sampling with a KV cache, in-process or sharded over Ray actors (``rollout.ray_workers``)."""

from redraft.rollout.sharded import TurnGenerator, generate_sharded, sharded_turns

__all__ = ["TurnGenerator", "generate_sharded", "sharded_turns"]
