"""A lean inference forward for LlamaForCausalLM, used by the sampler.

It reads the weights of an ordinary transformers Llama in place (nothing is converted or saved
differently), fuses q/k/v and gate/up into single matmuls and keeps a preallocated KV cache, so a
decode step is a handful of large matmuls with little Python around them. Generation with HF's
``generate`` spends most of its time in per-step bookkeeping at small model sizes; this path
avoids it. Numerically it is the HF forward (tests compare logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel


def supports_fast_path(model: PreTrainedModel) -> bool:
    cfg = model.config
    return (
        getattr(cfg, "model_type", None) == "llama"
        and type(model).__name__ == "LlamaForCausalLM"
        and _rope_type(cfg) == "default"
        and not getattr(cfg, "attention_bias", False)
        and not getattr(cfg, "mlp_bias", False)
        and getattr(cfg, "hidden_act", "silu") == "silu"
    )


def _rope_settings(cfg) -> dict:
    # transformers 5 keeps RoPE settings in rope_parameters; older versions in rope_scaling/rope_theta.
    return getattr(cfg, "rope_parameters", None) or getattr(cfg, "rope_scaling", None) or {}


def _rope_type(cfg) -> str:
    return _rope_settings(cfg).get("rope_type", _rope_settings(cfg).get("type", "default"))


def _rope_theta(cfg) -> float:
    return float(_rope_settings(cfg).get("rope_theta", getattr(cfg, "rope_theta", None) or 10000.0))


def _apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    # HF's rotate_half(x) * sin == roll(x, half) * [-sin, sin]: one copy instead of cat + neg.
    return x * cos + torch.roll(x, x.shape[-1] // 2, dims=-1) * signed_sin


class FastLlamaRunner:
    """Prefill once, then decode one token per call, for a fixed batch."""

    def __init__(self, model: PreTrainedModel, max_total_length: int):
        cfg = model.config
        self.heads = cfg.num_attention_heads
        self.kv_heads = getattr(cfg, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        self.max_total = max_total_length
        inner = model.model
        self.embed = inner.embed_tokens.weight
        self.final_norm = inner.norm.weight
        self.lm_head = model.lm_head.weight
        self.layers = []
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            self.layers.append(
                (
                    layer.input_layernorm.weight,
                    torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]),
                    attn.o_proj.weight,
                    layer.post_attention_layernorm.weight,
                    torch.cat([mlp.gate_proj.weight, mlp.up_proj.weight]),
                    mlp.down_proj.weight,
                )
            )
        inv_freq = 1.0 / (_rope_theta(cfg) ** (torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim))
        angles = torch.outer(torch.arange(max_total_length, dtype=torch.float32), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        dtype = self.embed.dtype
        half = self.head_dim // 2
        signed_sin = angles.sin()
        signed_sin[:, :half] = -signed_sin[:, :half]
        device = self.embed.device
        self.cos_table, self.sin_table = angles.cos().to(device, dtype), signed_sin.to(device, dtype)

    def _layer(self, x, weights, cos, sin, k_cache, v_cache, write_at, attn_mask, rows, last_rows=None):
        """One decoder block. ``x`` holds only real tokens, as rows (N, hidden); ``rows`` (or
        None when every position is real) places them in the (batch, length) grid that
        attention needs, so no matmul is spent on padding. With ``last_rows`` only each
        sequence's last position goes past the KV-cache write (the top layer of a prefill:
        no later layer needs the other positions)."""
        norm1, qkv_w, o_w, norm2, gate_up_w, down_w = weights
        batch, length = cos.shape[0], cos.shape[2]
        hidden = x.shape[-1]
        qkv = F.linear(F.rms_norm(x, (hidden,), norm1, self.eps), qkv_w)
        if rows is not None:
            qkv = qkv.new_zeros(batch * length, qkv.shape[-1]).index_copy_(0, rows, qkv)
        qkv = qkv.view(batch, length, self.heads + 2 * self.kv_heads, self.head_dim)
        # Rotate queries and keys together in one pass.
        qk = _apply_rope(qkv[:, :, : self.heads + self.kv_heads].transpose(1, 2), cos, sin)
        q, k = qk.split([self.heads, self.kv_heads], dim=1)
        v = qkv[:, :, self.heads + self.kv_heads :].transpose(1, 2)
        end = write_at + length
        k_cache[:, :, write_at:end] = k
        v_cache[:, :, write_at:end] = v
        keys, values = k_cache[:, :, :end], v_cache[:, :, :end]
        if last_rows is not None:
            q, attn_mask, x, rows, length = q[:, :, -1:], attn_mask[:, :, -1:], x[last_rows], None, 1
        if self.kv_heads == self.heads:
            # Short sequences: plain matmuls beat the fused kernel's per-call cost here.
            scores = torch.matmul(q, keys.transpose(-1, -2)).mul_(self.head_dim**-0.5)
            attended = torch.matmul(scores.masked_fill_(~attn_mask, float("-inf")).softmax(-1), values)
        else:
            attended = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=attn_mask, enable_gqa=self.kv_heads != self.heads
            )
        attended = attended.transpose(1, 2).reshape(batch * length, -1)
        if rows is not None:
            attended = attended.index_select(0, rows)
        x = x + F.linear(attended, o_w)
        gate, up = F.linear(F.rms_norm(x, (hidden,), norm2, self.eps), gate_up_w).chunk(2, dim=-1)
        return x + F.linear(F.silu(gate).mul_(up), down_w)

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.rms_norm(x, (x.shape[-1],), self.final_norm, self.eps), self.lm_head)

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cos_table[positions].unsqueeze(1), self.sin_table[positions].unsqueeze(1)

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Left-padded prompts in, next-token logits of the last position out."""
        batch, length = input_ids.shape
        shape = (batch, self.kv_heads, self.max_total, self.head_dim)
        # Uninitialised is safe: attention only ever reads positions already written.
        self.k_caches = [self.embed.new_empty(shape) for _ in self.layers]
        self.v_caches = [self.embed.new_empty(shape) for _ in self.layers]
        self.valid = torch.zeros(batch, self.max_total, dtype=torch.bool, device=input_ids.device)
        self.valid[:, :length] = attention_mask.bool()
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        self.next_position = positions[:, -1] + 1
        self.length = length
        causal = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
        # Padding queries attend to themselves only, so no softmax row is empty (NaN-free).
        mask = (causal & self.valid[:, None, :length]) | torch.eye(length, dtype=torch.bool, device=input_ids.device)
        cos, sin = self._rope(positions)
        rows = attention_mask.flatten().nonzero().flatten()
        x = F.embedding(input_ids.flatten()[rows], self.embed)
        # Left padding puts every prompt's last token in the last column, i.e. the row just
        # before the next prompt's first row.
        last_rows = attention_mask.sum(dim=1).cumsum(0) - 1
        top = len(self.layers) - 1
        for depth, (weights, k_cache, v_cache) in enumerate(zip(self.layers, self.k_caches, self.v_caches)):
            x = self._layer(
                x, weights, cos, sin, k_cache, v_cache, 0, mask.unsqueeze(1), rows, last_rows if depth == top else None
            )
        return self._logits(x)

    def expand(self, rows: torch.Tensor) -> None:
        """Make the prefilled batch the rows ``rows`` of it (repeats allowed)."""
        self.k_caches = [cache.index_select(0, rows) for cache in self.k_caches]
        self.v_caches = [cache.index_select(0, rows) for cache in self.v_caches]
        self.valid, self.next_position = self.valid[rows], self.next_position[rows]

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """One new token per row in, next-token logits out."""
        at = self.length
        self.valid[:, at] = True
        cos, sin = self._rope(self.next_position[:, None])
        mask = self.valid[:, None, None, : at + 1]
        x = F.embedding(tokens, self.embed)
        for weights, k_cache, v_cache in zip(self.layers, self.k_caches, self.v_caches):
            x = self._layer(x, weights, cos, sin, k_cache, v_cache, at, mask, None)
        self.length += 1
        self.next_position = self.next_position + 1
        return self._logits(x)
