"""Tokenizers: train a small BPE one on the task corpus, load a tokenizer folder, encode prompts.

``encode_prompts`` is the one way every stage turns prompt text into ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from redraft.errors import RedraftError

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 300, min_frequency: int = 2) -> PreTrainedTokenizerFast:
    """Byte-level BPE with one token per digit, so numbers are read digit by digit.

    The byte alphabet is always in the vocabulary, so any text encodes and decodes losslessly.
    """
    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, BOS, EOS, UNK],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS, eos_token=EOS, unk_token=UNK
    )


# What AutoTokenizer can load from: a fast tokenizer, a config naming one, or a slow tokenizer's vocab.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer of a local folder, or of a Hugging Face Hub id (from the local cache; see text.hub)."""
    from redraft.text.hub import resolve_pretrained

    path = resolve_pretrained(path)
    if not path.is_dir():
        raise RedraftError(f"tokenizer folder not found: {path}")
    if not any((path / name).is_file() for name in TOKENIZER_FILES):
        raise RedraftError(
            f"no tokenizer in {path} (none of {', '.join(TOKENIZER_FILES)}): is it a model or tokenizer folder?"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError) as exc:  # transformers' own words for a folder it cannot read
        raise RedraftError(f"cannot load the tokenizer in {path}: {str(exc).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        # Many HF causal LMs ship without a pad token; EOS is the usual stand-in.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def encode_prompts(tokenizer, prompts: list[str]) -> list[list[int]]:
    """How every stage turns prompt text into ids (training and sampling must agree).

    The tokenizer adds its special tokens (a BOS for Llama-style tokenizers), except to a prompt
    that already starts with the BOS text, as a chat template that writes ``{{ bos_token }}``
    renders it: that prompt gets no second BOS.
    """
    bos = getattr(tokenizer, "bos_token", None)
    has_bos = [bool(bos) and prompt.startswith(bos) for prompt in prompts]
    if not any(has_bos):
        return tokenizer(prompts, add_special_tokens=True)["input_ids"]
    return [tokenizer(prompt, add_special_tokens=not flag)["input_ids"] for prompt, flag in zip(prompts, has_bos)]
