"""Stops: a special-token stop string fires, generation_config's EOS list ends a completion."""

import pytest
import torch

from redraft.config import ModelSection, SamplingSection
from redraft.models import build_model
from redraft.rollout.sampler import eos_token_ids, generate
from tests.chat import chatml_tokenizer


def _scripted(model, tokenizer, script: list[str]):
    """Make greedy decoding emit ``script`` (token strings), then keep repeating its last token."""
    ids = tokenizer.convert_tokens_to_ids(script)
    if not hasattr(model, "unscripted_forward"):
        model.unscripted_forward = model.forward
    original, calls = model.unscripted_forward, {"n": 0}

    def forward(*args, **kwargs):
        out = original(*args, **kwargs)
        bias = torch.zeros(out.logits.shape[-1])
        bias[ids[min(calls["n"], len(ids) - 1)]] = 1e4
        calls["n"] += 1
        out.logits = out.logits + bias
        return out

    model.forward = forward
    return ids


@pytest.fixture()
def chat_model():
    tokenizer = chatml_tokenizer()
    torch.manual_seed(0)
    return build_model(ModelSection(preset="micro"), tokenizer), tokenizer


def test_special_token_stop_string_fires(chat_model):
    model, tokenizer = chat_model
    ids = _scripted(model, tokenizer, ["4", "2", "<|im_end|>", "Ċ", "9"])  # (the fast path skips model.forward)
    params = SamplingSection(temperature=0, max_new_tokens=6, stop=["<|im_end|>"], backend="hf")
    out = generate(model, tokenizer, ["What is 40+2?"], params)
    assert out.finish_reasons == ["stop"] and out.texts == ["42"] and out.token_ids[0] == ids[:3]


def test_plain_stop_string_after_a_special_token(chat_model):
    model, tokenizer = chat_model
    _scripted(model, tokenizer, ["4", "<|im_start|>", "2", "Ċ", "9"])
    out = generate(model, tokenizer, ["x"], SamplingSection(temperature=0, max_new_tokens=6, stop=["\n"], backend="hf"))
    assert out.finish_reasons == ["stop"] and out.texts == ["42"]


def test_generation_config_eos_list_is_honoured(chat_model):
    model, tokenizer = chat_model
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert tokenizer.eos_token == "</s>"  # a base model's tokenizer: the chat turn ends elsewhere
    params = SamplingSection(temperature=0, max_new_tokens=6, backend="hf")
    ids = _scripted(model, tokenizer, ["4", "2", "<|im_end|>", "9"])
    assert generate(model, tokenizer, ["x"], params).finish_reasons == ["length"]  # no stop configured
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, end]
    assert eos_token_ids(model, tokenizer) == [tokenizer.eos_token_id, end]
    _scripted(model, tokenizer, ["4", "2", "<|im_end|>", "9"])
    out = generate(model, tokenizer, ["x"], params)
    assert out.finish_reasons == ["eos"] and out.texts == ["42"] and out.token_ids[0] == ids[:3]
