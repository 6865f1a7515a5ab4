"""redraft: train language models with reinforcement learning, from pretraining to self-correction."""

__version__ = "0.1.0"
