"""redraft: train language models with reinforcement learning, from pretraining to self-correction.

The trainer classes (``from redraft import GRPOTrainer, GRPOConfig``, and SFT, DPO, Reward and SCoRe
counterparts) live in :mod:`redraft.trainers`; they are imported on first use, so ``import redraft``
stays light and the root package depends on nothing.
"""

__version__ = "0.1.0"

TRAINER_API = (
    "DPOConfig",
    "DPOTrainer",
    "GRPOConfig",
    "GRPOTrainer",
    "RewardConfig",
    "RewardTrainer",
    "SCoReTrainer",
    "SFTConfig",
    "SFTTrainer",
    "ScoreConfig",
)
__all__ = ["__version__", *TRAINER_API]


def __getattr__(name: str):
    if name in TRAINER_API:
        from importlib import import_module

        return getattr(import_module("redraft.trainers"), name)
    raise AttributeError(f"module 'redraft' has no attribute {name!r}")
