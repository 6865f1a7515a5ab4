"""Token sequences with a loss mask: whole text for pretraining, completion only for SFT."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from redraft.rollout.sampler import encode_prompts


@dataclass
class TokenizedData:
    """Right-padded later, per batch; ``loss_masks[i][j]`` says whether token j is a target."""

    input_ids: list[list[int]]
    loss_masks: list[list[int]]

    def __len__(self) -> int:
        return len(self.input_ids)


def _truncate(ids: list[int], mask: list[int], max_length: int) -> tuple[list[int], list[int]]:
    return ids[:max_length], mask[:max_length]


def pretraining_data(tokenizer, texts: list[str], max_length: int) -> TokenizedData:
    eos = [tokenizer.eos_token_id]
    ids_list, masks = [], []
    for ids in encode_prompts(tokenizer, texts):
        ids, mask = _truncate(ids + eos, [1] * (len(ids) + 1), max_length)
        ids_list.append(ids)
        masks.append(mask)
    return TokenizedData(ids_list, masks)


def sft_data(tokenizer, prompts: list[str], completions: list[str], max_length: int) -> TokenizedData:
    """Prompt and completion are encoded apart, exactly as the sampler sees the prompt."""
    eos = [tokenizer.eos_token_id]
    prompt_ids = encode_prompts(tokenizer, prompts)
    completion_ids = tokenizer(completions, add_special_tokens=False)["input_ids"]
    ids_list, masks = [], []
    for p, c in zip(prompt_ids, completion_ids):
        ids, mask = _truncate(p + c + eos, [0] * len(p) + [1] * (len(c) + 1), max_length)
        ids_list.append(ids)
        masks.append(mask)
    return TokenizedData(ids_list, masks)


def collate(data: TokenizedData, rows: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(data.input_ids[r]) for r in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    loss_mask = torch.zeros((len(rows), width), dtype=torch.float32)
    for i, r in enumerate(rows):
        n = len(data.input_ids[r])
        input_ids[i, :n] = torch.tensor(data.input_ids[r])
        attention[i, :n] = 1
        loss_mask[i, :n] = torch.tensor(data.loss_masks[r], dtype=torch.float32)
    return {"input_ids": input_ids, "attention_mask": attention, "loss_mask": loss_mask}


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
