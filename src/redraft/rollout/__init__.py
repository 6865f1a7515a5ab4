"""Rollouts: batched sampling with a KV cache, in-process or on Ray actors (``rollout.ray_workers``)."""
