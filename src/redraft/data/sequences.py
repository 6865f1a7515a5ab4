"""Token sequences with a loss mask: whole text for pretraining, completion only for SFT.

SFT rows are ``prompt ‖ completion ‖ EOS`` with the loss on the completion and EOS, or, for chat
rows, the conversation rendered by the tokenizer's chat template with the loss on the assistant
messages (their end-of-turn marker included; the template's own end marker stands for EOS). Rows
longer than the length limit are cut, and a warning says how many (``TokenizedData.truncated``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from redraft.errors import DataError, warn
from redraft.tasks.base import Example, Task
from redraft.text.prompts import Message, assistant_spans
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
    truncated: int = 0  # rows cut at max_length

    def __len__(self) -> int:
        return len(self.lengths)


def pack_sequences(
    sequences: list[list[int]],
    masks: list[list[int]],
    pad_id: int,
    max_length: int,
    anchor_masks: list[list[int]] | None = None,
    name: str = "training rows",
    setting: str = "train.max_length",
) -> TokenizedData:
    """Token sequences and their loss masks (1 = target), cut to ``max_length`` and right-padded.

    Cutting is never silent: a warning counts the rows cut and those that lost target tokens
    (``name`` says what the rows are, ``setting`` which key raises the limit).
    """
    truncated = report_truncation(sequences, masks, max_length, name, setting)
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
    return TokenizedData(input_ids, attention, padded(masks), attention.sum(dim=1), anchor, truncated)


def report_truncation(
    sequences: Sequence[Sequence[int]],
    masks: Sequence[Sequence[int]],
    max_length: int,
    name: str = "training rows",
    setting: str = "train.max_length",
) -> int:
    """Warn when rows are longer than ``max_length``; returns how many are."""
    long_rows = [i for i, seq in enumerate(sequences) if len(seq) > max_length]
    if long_rows:
        lose_targets = sum(any(masks[i][max_length:]) for i in long_rows)
        longest = max(len(sequences[i]) for i in long_rows)
        warn(
            f"{len(long_rows)} of {len(sequences)} {name} are longer than {setting}={max_length} tokens (the longest "
            f"has {longest}) and are cut; {lose_targets} of them lose target tokens, their EOS (or end-of-turn "
            f"marker) among them, so the model does not learn to end them. Raise {setting} or shorten the rows."
        )
    return len(long_rows)


def pretraining_data(tokenizer, texts: list[str], max_length: int) -> TokenizedData:
    eos = [tokenizer.eos_token_id]
    sequences = [ids + eos for ids in encode_prompts(tokenizer, texts)]
    masks = [[1] * len(s) for s in sequences]
    return pack_sequences(sequences, masks, tokenizer.pad_token_id, max_length, name="pretraining texts")


def plain_sequences(tokenizer, prompts: list[str], completions: list[str]) -> tuple[list[list[int]], list[list[int]]]:
    """``prompt ‖ completion ‖ EOS`` and its loss mask (completion and EOS); prompt and completion are
    encoded apart, exactly as the sampler sees the prompt."""
    if not prompts:
        return [], []
    eos = [tokenizer.eos_token_id]
    prompt_ids = encode_prompts(tokenizer, prompts)
    completion_ids = tokenizer(completions, add_special_tokens=False)["input_ids"]
    sequences = [p + c + eos for p, c in zip(prompt_ids, completion_ids)]
    masks = [[0] * len(p) + [1] * (len(c) + 1) for p, c in zip(prompt_ids, completion_ids)]
    return sequences, masks


def chat_sequence(tokenizer, messages: Sequence[Message], trained: Sequence[bool]) -> tuple[list[int], list[int]]:
    """A conversation rendered by the tokenizer's chat template, and its loss mask: 1 on the tokens of
    every trained assistant message (through its end-of-turn marker), 0 elsewhere.

    The text is encoded piece by piece at the message boundaries, so the prompt before the first
    trained message has exactly the ids the sampler gives that prompt (:func:`encode_prompts`: a
    template that writes the BOS gets no second one); no EOS is appended, the template ends the turn.
    """
    text, spans = assistant_spans(tokenizer, messages, trained)
    cuts = [0, *(edge for span in spans for edge in span), len(text)]
    ids, mask = [], []
    for piece, (start, end) in enumerate(zip(cuts, cuts[1:])):
        if start == end:
            continue
        chunk = text[start:end]
        if start == 0:  # what the sampler's prompts start with (the tokenizer's BOS, unless the text has it)
            chunk_ids = encode_prompts(tokenizer, [chunk])[0]
        else:
            chunk_ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
        ids += chunk_ids
        mask += [piece % 2] * len(chunk_ids)  # odd pieces are the spans
    return ids, mask


def sft_data(
    tokenizer,
    prompts: list[str],
    completions: list[str],
    max_length: int,
    name: str = "training rows",
    setting: str = "train.max_length",
) -> TokenizedData:
    """Prompt and completion are encoded apart, exactly as the sampler sees the prompt."""
    sequences, masks = plain_sequences(tokenizer, prompts, completions)
    return pack_sequences(sequences, masks, tokenizer.pad_token_id, max_length, name=name, setting=setting)


def example_sequences(tokenizer, task: Task, examples: Sequence[Example]) -> tuple[list[list[int]], list[list[int]]]:
    """Every example's SFT sequence and loss mask: plain rows as :func:`sft_data` builds them (the task's
    prompt, the target, EOS), chat rows by :func:`chat_sequence` (the task must have the tokenizer:
    ``task.use_tokenizer``)."""
    for ex in examples:
        if not ex.target and not ex.completion_messages:
            raise DataError(
                f"task {task.name!r}: a row has no SFT target (no completion or answer): {ex.question!r:.80}"
            )
    plain = [i for i, ex in enumerate(examples) if not ex.is_chat]
    sequences: list[list[int]] = [[] for _ in examples]
    masks: list[list[int]] = [[] for _ in examples]
    prompts, targets = [task.prompt(examples[i]) for i in plain], [examples[i].target for i in plain]
    plain_ids, plain_masks = plain_sequences(tokenizer, prompts, targets)
    for i, ids, mask in zip(plain, plain_ids, plain_masks):
        sequences[i], masks[i] = ids, mask
    if len(plain) < len(examples):
        if task.render_chat is None:
            task.use_tokenizer(tokenizer)
        for i, ex in enumerate(examples):
            if ex.is_chat:
                sequences[i], masks[i] = chat_sequence(tokenizer, *ex.conversation())
    return sequences, masks


def task_sft_data(
    tokenizer,
    task: Task,
    examples: Sequence[Example],
    max_length: int,
    name: str = "SFT rows",
    setting: str = "train.max_length",
) -> TokenizedData:
    """SFT data of a task's examples, whatever their format (plain, TRL text, prompt/completion, chat)."""
    sequences, masks = example_sequences(tokenizer, task, examples)
    return pack_sequences(sequences, masks, tokenizer.pad_token_id, max_length, name=name, setting=setting)


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
