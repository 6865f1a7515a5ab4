"""RLHF: preference data, reward models, DPO, PPO against a reward model, and the loop of rounds.

This package's ``__init__`` stays import-light (the CLI imports ``redraft.rlhf.cli`` at start-up);
the trainers live in :mod:`redraft.training.reward_model` and :mod:`redraft.training.dpo`, the
round and the loop in :mod:`redraft.rlhf.loop`.
"""
