"""Batched sampling with a KV cache: temperature (0 = greedy), top-k, top-p, stop strings, EOS.

A completion ends at any EOS id (the tokenizer's, and every one in the model's
``generation_config.eos_token_id``, which is a list for many chat models), at a stop string
(special tokens such as ``<|im_end|>`` included), or after ``max_new_tokens``.

Returns text, generated token ids and per-token log-probs. Log-probs are those of the
temperature-scaled distribution before top-k/top-p truncation, which is what an RL trainer
recomputes from the policy (``log_softmax(logits / T)``); for greedy decoding T is taken as 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel

from redraft.config import SamplingSection
from redraft.errors import ConfigError
from redraft.models.fast_llama import FastLlamaRunner, supports_fast_path
from redraft.text.tokenizer import encode_prompts


@dataclass
class Generation:
    """One entry per prompt, in the order the prompts were given."""

    prompt_ids: list[list[int]] = field(default_factory=list)
    token_ids: list[list[int]] = field(default_factory=list)  # generated, through EOS/stop
    logprobs: list[list[float]] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # without EOS and without the stop string
    finish_reasons: list[str] = field(default_factory=list)  # "eos" | "stop" | "length"

    def extend(self, other: Generation) -> None:
        for name in ("prompt_ids", "token_ids", "logprobs", "texts", "finish_reasons"):
            getattr(self, name).extend(getattr(other, name))


class HFRunner:
    """Generic path for any causal LM: its own forward with a DynamicCache."""

    def __init__(self, model: PreTrainedModel):
        self.model = model

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.mask = attention_mask
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        self.next_position = positions[:, -1:] + 1
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=positions,
            past_key_values=DynamicCache(),
            use_cache=True,
        )
        self.cache = out.past_key_values
        return out.logits[:, -1].float()

    def expand(self, rows: torch.Tensor) -> None:
        """Make the prefilled batch the rows ``rows`` of it (repeats allowed)."""
        self.cache.reorder_cache(rows)
        self.mask, self.next_position = self.mask[rows], self.next_position[rows]

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(tokens), 1)], dim=1)
        out = self.model(
            input_ids=tokens[:, None],
            attention_mask=self.mask,
            position_ids=self.next_position,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.next_position = self.next_position + 1
        self.cache = out.past_key_values
        return out.logits[:, -1].float()


def sample_next(
    logits: torch.Tensor,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    uniforms: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row; returns (tokens, log-probs of the tempered, untruncated distribution).

    Randomness comes from ``generator`` (one stream for the whole batch), or, given ``uniforms``
    (one number in (0, 1] per row), by inverse-CDF sampling: then a row's token depends only on its
    own logits and number, not on which other rows share the batch.
    """
    if temperature == 0:
        tokens = logits.argmax(dim=-1)
        logprobs = torch.log_softmax(logits, dim=-1)
        return tokens, logprobs.gather(-1, tokens[:, None]).squeeze(-1)
    scaled = logits / temperature
    logprobs = torch.log_softmax(scaled, dim=-1)
    filtered = scaled
    if top_k and top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
        filtered = filtered.masked_fill(filtered < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(filtered, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        # Drop a token when the mass before it already reaches top_p (the first always stays).
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        filtered = filtered.masked_fill(drop, float("-inf"))
    probs = filtered.softmax(dim=-1)
    if uniforms is None:
        # A seeded generator lives on the CPU: draw there, whatever device the logits are on.
        draw_from = probs if generator is None or generator.device == probs.device else probs.cpu()
        tokens = torch.multinomial(draw_from, 1, generator=generator).squeeze(-1).to(probs.device)
    else:
        cdf = probs.double().cumsum(dim=-1)
        # u > 0 never lands on a zero-probability token: its CDF equals its predecessor's.
        targets = uniforms.to(cdf.device, torch.float64)[:, None] * cdf[:, -1:]
        tokens = torch.searchsorted(cdf, targets).squeeze(-1).clamp(max=probs.shape[-1] - 1)
    return tokens, logprobs.gather(-1, tokens[:, None]).squeeze(-1)


def derive_seed(*parts: int) -> int:
    """A well-mixed seed in [0, 2**63) from non-negative integers (run seed, iteration, row, turn …).

    Different tuples give unrelated streams, unlike sums or products of the parts, which collide.
    """
    return int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def row_uniforms(row_seeds: Sequence[int], steps: int) -> torch.Tensor:
    """(rows, steps) numbers in (0, 1]: row i's come from its own generator seeded with ``row_seeds[i]``."""
    if not row_seeds:
        return torch.zeros(0, steps, dtype=torch.float64)
    draws = [
        torch.rand(steps, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) for seed in row_seeds
    ]
    return 1.0 - torch.stack(draws)


def _left_pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        if seq:
            ids[row, width - len(seq) :] = torch.tensor(seq)
            mask[row, width - len(seq) :] = 1
    return ids, mask


def _make_runner(model: PreTrainedModel, backend: str, max_total: int):
    if backend == "fast" and not supports_fast_path(model):
        raise ConfigError("sampling.backend: 'fast' needs a plain Llama model; use 'auto' or 'hf'")
    if backend in ("fast", "auto") and supports_fast_path(model):
        return FastLlamaRunner(model, max_total)
    return HFRunner(model)


def eos_token_ids(model: PreTrainedModel, tokenizer) -> list[int]:
    """The ids that end a completion: the tokenizer's EOS, then every id of the model's
    ``generation_config.eos_token_id`` (an id or a list: e.g. ``<|im_end|>`` and ``<|endoftext|>``)."""
    ids = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for token in [configured] if isinstance(configured, int) else configured or []:
        if int(token) not in ids:
            ids.append(int(token))
    return ids


class _StopMatcher:
    """Finds stop strings in the tail of each row's generated text, special tokens included in that
    text (so a stop string such as ``<|im_end|>`` fires)."""

    def __init__(self, tokenizer, stops: list[str]):
        self.tokenizer = tokenizer
        self.stops = stops
        self.window = max(len(s) for s in stops) + 2  # a token holds at least one byte

    def hits(self, tokens: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        tails = tokens[rows, -self.window :].tolist()
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=False)
        found = torch.tensor([any(stop in text for stop in self.stops) for text in texts])
        return rows[found]


def _text_before_stop(tokenizer, tokens: list[int], text: str, stops: list[str]) -> str:
    """``text`` (decoded without special tokens) cut where the first stop string starts."""
    found = [text.find(stop) for stop in stops if stop in text]
    if found:
        return text[: min(found)]
    # The stop string is, or holds, a special token, which the plain text leaves out: cut the text
    # decoded with special tokens, then drop those.
    full = tokenizer.decode(tokens, skip_special_tokens=False)
    cut = full[: min((full.find(stop) for stop in stops if stop in full), default=len(full))]
    for special in sorted(tokenizer.all_special_tokens, key=len, reverse=True):
        cut = cut.replace(special, "")
    return cut


def _prefill_each_prompt_once(runner, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The runner's prefill of the batch, computed once per distinct prompt and copied to its repeats: GRPO and
    RLOO sample every prompt several times, and with short replies the prefill is about half a rollout's compute."""
    width = input_ids.shape[1]
    distinct, rows = torch.unique(torch.cat([input_ids, attention_mask.long()], dim=1), dim=0, return_inverse=True)
    if len(distinct) == len(input_ids):
        return runner.prefill(input_ids, attention_mask)
    logits = runner.prefill(distinct[:, :width], distinct[:, width:].to(attention_mask.dtype))
    runner.expand(rows)
    return logits[rows]


@torch.inference_mode()
def _generate_batch(
    model, tokenizer, prompt_ids, params: SamplingSection, generator, backend, row_seeds: Sequence[int] | None = None
) -> Generation:
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_id = tokenizer.eos_token_id
    eos_ids = torch.tensor(eos_token_ids(model, tokenizer), dtype=torch.long)
    # An empty prompt still needs one position to predict from.
    start_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos_id
    prompt_ids = [ids if ids else [start_id] for ids in prompt_ids]
    input_ids, attention_mask = _left_pad(prompt_ids, pad_id)
    device = next(model.parameters()).device
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    max_new = params.max_new_tokens
    if limit is not None:
        max_new = min(max_new, limit - input_ids.shape[1])
    if max_new <= 0:
        raise ConfigError(f"prompts of {input_ids.shape[1]} tokens leave no room in the model's {limit} positions")
    runner = _make_runner(model, backend, input_ids.shape[1] + max_new)
    batch = len(prompt_ids)
    tokens = torch.full((batch, max_new), pad_id, dtype=torch.long)
    logprobs = torch.zeros(batch, max_new)
    lengths = torch.full((batch,), max_new, dtype=torch.long)
    finished = torch.zeros(batch, dtype=torch.bool)
    reasons = ["length"] * batch
    stop_matcher = _StopMatcher(tokenizer, params.stop) if params.stop else None

    uniforms = row_uniforms(row_seeds, max_new) if row_seeds is not None else None
    logits = _prefill_each_prompt_once(runner, input_ids.to(device), attention_mask.to(device))
    for step in range(max_new):
        next_tokens, next_logprobs = sample_next(
            logits, params.temperature, params.top_k, params.top_p, generator,
            uniforms[:, step] if uniforms is not None else None,
        )  # fmt: skip
        next_tokens, next_logprobs = next_tokens.cpu(), next_logprobs.cpu()  # bookkeeping stays on the CPU
        next_tokens = next_tokens.masked_fill(finished, pad_id)
        tokens[:, step] = next_tokens
        logprobs[:, step] = next_logprobs.masked_fill(finished, 0.0)
        newly_done = torch.isin(next_tokens, eos_ids) & ~finished
        for row in newly_done.nonzero().flatten().tolist():
            reasons[row] = "eos"
        if stop_matcher is not None:
            open_rows = (~finished & ~newly_done).nonzero().flatten()
            if len(open_rows):
                for row in stop_matcher.hits(tokens[:, : step + 1], open_rows).tolist():
                    reasons[row] = "stop"
                    newly_done[row] = True
        lengths[newly_done] = step + 1
        finished |= newly_done
        if finished.all() or step == max_new - 1:
            break
        logits = runner.decode(next_tokens.to(device))

    out = Generation()
    for row in range(batch):
        n = int(lengths[row])
        row_tokens = tokens[row, :n].tolist()
        # The EOS token is not text (an EOS from generation_config need not be a special token).
        text = tokenizer.decode(row_tokens[:-1] if reasons[row] == "eos" else row_tokens, skip_special_tokens=True)
        if reasons[row] == "stop":
            text = _text_before_stop(tokenizer, row_tokens, text, params.stop)
        out.prompt_ids.append(list(prompt_ids[row]))
        out.token_ids.append(row_tokens)
        out.logprobs.append(logprobs[row, :n].tolist())
        out.texts.append(text)
        out.finish_reasons.append(reasons[row])
    return out


def generate(
    model: PreTrainedModel,
    tokenizer,
    prompts: list[str],
    params: SamplingSection | None = None,
    seed: int | None = None,
) -> Generation:
    """Sample one completion per prompt in batches of ``params.batch_size``."""
    return generate_ids(model, tokenizer, encode_prompts(tokenizer, prompts), params, seed)


def generate_ids(
    model: PreTrainedModel,
    tokenizer,
    prompt_ids: list[list[int]],
    params: SamplingSection | None = None,
    seed: int | None = None,
    generator: torch.Generator | None = None,
    row_seeds: Sequence[int] | None = None,
) -> Generation:
    """Like :func:`generate` for prompts already tokenized (multi-turn contexts are token ids).

    With ``row_seeds`` (one per prompt) every completion is sampled from its own random stream, so
    it is the same whatever the batch size, the other prompts in the batch or the process that
    samples it (what data-parallel RL needs to match a single process).
    """
    params = params or SamplingSection()
    if row_seeds is not None and len(row_seeds) != len(prompt_ids):
        raise ConfigError(f"{len(row_seeds)} row seeds for {len(prompt_ids)} prompts")
    if generator is None and seed is not None:
        generator = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.eval()
    result = Generation()
    try:
        for start in range(0, len(prompt_ids), params.batch_size):
            chunk = prompt_ids[start : start + params.batch_size]
            chunk_seeds = row_seeds[start : start + params.batch_size] if row_seeds is not None else None
            result.extend(_generate_batch(model, tokenizer, chunk, params, generator, params.backend, chunk_seeds))
    finally:
        model.train(was_training)
    return result
