"""Token sequences with a loss mask: whole text for pretraining, completion only for SFT."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from redraft.text.tokenizer import encode_prompts


@dataclass
class TokenizedData:
    """Sequences stored once as right-padded tensors; a batch is a row selection.

    ``loss_mask[i, j]`` says whether token j of sequence i is a training target;
    ``anchor_mask[i, j]`` (optional) whether the model's distribution for token j is pulled towards
    a frozen reference model's (see ``train_lm``'s ``anchor``).
    """

    input_ids: torch.Tensor  # (N, L) long, padded with the pad id
    attention_mask: torch.Tensor  # (N, L) long
    loss_mask: torch.Tensor  # (N, L) float
    lengths: torch.Tensor  # (N,) long
    anchor_mask: torch.Tensor | None = None  # (N, L) float

    def __len__(self) -> int:
        return len(self.lengths)


def pack_sequences(
    sequences: list[list[int]],
    masks: list[list[int]],
    pad_id: int,
    max_length: int,
    anchor_masks: list[list[int]] | None = None,
) -> TokenizedData:
    """Token sequences and their loss masks (1 = target), cut to ``max_length`` and right-padded."""
    sequences = [s[:max_length] for s in sequences]
    width = max((len(s) for s in sequences), default=1)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        input_ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        attention[i, : len(seq)] = 1

    def padded(rows: list[list[int]]) -> torch.Tensor:
        out = torch.zeros((len(sequences), width), dtype=torch.float32)
        for i, row in enumerate(rows):
            row = row[:max_length]
            out[i, : len(row)] = torch.tensor(row, dtype=torch.float32)
        return out

    anchor = padded(anchor_masks) if anchor_masks is not None else None
    return TokenizedData(input_ids, attention, padded(masks), attention.sum(dim=1), anchor)


def pretraining_data(tokenizer, texts: list[str], max_length: int) -> TokenizedData:
    eos = [tokenizer.eos_token_id]
    sequences = [ids + eos for ids in encode_prompts(tokenizer, texts)]
    return pack_sequences(sequences, [[1] * len(s) for s in sequences], tokenizer.pad_token_id, max_length)


def sft_data(tokenizer, prompts: list[str], completions: list[str], max_length: int) -> TokenizedData:
    """Prompt and completion are encoded apart, exactly as the sampler sees the prompt."""
    eos = [tokenizer.eos_token_id]
    prompt_ids = encode_prompts(tokenizer, prompts)
    completion_ids = tokenizer(completions, add_special_tokens=False)["input_ids"]
    sequences = [p + c + eos for p, c in zip(prompt_ids, completion_ids)]
    masks = [[0] * len(p) + [1] * (len(c) + 1) for p, c in zip(prompt_ids, completion_ids)]
    return pack_sequences(sequences, masks, tokenizer.pad_token_id, max_length)


def collate(data: TokenizedData, rows: list[int] | torch.Tensor) -> dict[str, torch.Tensor]:
    """The selected rows, trimmed to their longest sequence."""
    rows = torch.as_tensor(rows, dtype=torch.long)
    width = int(data.lengths[rows].max()) if len(rows) else 1
    batch = {
        "input_ids": data.input_ids[rows, :width],
        "attention_mask": data.attention_mask[rows, :width],
        "loss_mask": data.loss_mask[rows, :width],
    }
    if data.anchor_mask is not None:
        batch["anchor_mask"] = data.anchor_mask[rows, :width]
    return batch


def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled example order of one epoch, a pure function of (seed, epoch) so resume replays it."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(num_examples, generator=generator).tolist()


def micro_batch_rows(num_examples: int, batch_size: int, seed: int, index: int) -> list[int]:
    """Rows of the ``index``-th micro-batch of the endless stream of epochs (last partial batch dropped)."""
    per_epoch = max(1, num_examples // batch_size)
    epoch, position = divmod(index, per_epoch)
    order = epoch_order(num_examples, seed, epoch)
    return order[position * batch_size : (position + 1) * batch_size]
