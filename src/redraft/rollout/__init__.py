"""Rollouts: batched sampling with a KV cache."""
