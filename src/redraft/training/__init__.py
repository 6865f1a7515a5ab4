"""Training loops (pretraining and SFT here; RL stages build on the same pieces)."""
