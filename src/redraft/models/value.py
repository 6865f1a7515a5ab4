"""A critic for PPO: the policy's transformer body with a scalar head, as a separate model."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel

from redraft.fsutil import atomic_directory
from redraft.models.build import torch_dtype
from redraft.text.hub import resolve_pretrained

HEAD_FILE = "value_head.safetensors"


class ValueModel(nn.Module):
    """V(prefix) for every position. The head starts at zero, so early value targets come from
    the returns alone instead of from noise (the common RLHF recipe)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    @classmethod
    def from_pretrained(cls, path: str | Path, dtype: str | torch.dtype | None = None) -> ValueModel:
        """Body from any causal-LM checkpoint (its LM head is dropped) in ``dtype`` (fp32 when None); head restored
        if saved."""
        body = AutoModel.from_pretrained(str(resolve_pretrained(path)), dtype=torch_dtype(dtype))
        model = cls(body).to(body.dtype)
        head = Path(path) / HEAD_FILE
        if head.is_file():
            model.head.load_state_dict(load_file(str(head)))
        return model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T) values aligned with tokens: entry t is V of the prefix before token t."""
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        values = self.head(hidden).squeeze(-1)
        return torch.cat([values.new_zeros(len(values), 1), values[:, :-1]], dim=1)

    def save_pretrained(self, path: str | Path) -> None:
        with atomic_directory(path) as staging:
            self.backbone.save_pretrained(staging, safe_serialization=True)
            save_file({k: v.contiguous() for k, v in self.head.state_dict().items()}, str(staging / HEAD_FILE))
