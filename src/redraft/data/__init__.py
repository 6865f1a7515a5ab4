"""Training data below the models and trainers that use it.

sequences: token sequences with a loss mask (pretraining, SFT, reward-model inputs) and batch order.
preferences: preference pairs in TRL's format, and rankings / ratings turned into pairs.
"""
