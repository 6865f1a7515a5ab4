"""RLHF: the loop of rounds (sample, collect preferences, reward model + PPO or DPO, evaluate).

This package's ``__init__`` stays import-light (the CLI imports ``redraft.rlhf.cli`` at start-up);
preference pairs live in :mod:`redraft.data.preferences`, the trainers in
:mod:`redraft.training.reward_model` and :mod:`redraft.training.dpo`, the round and the loop in
:mod:`redraft.rlhf.loop`.
"""
