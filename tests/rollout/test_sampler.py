import pytest
import torch

from redraft.config import ModelSection, SamplingSection
from redraft.models import build_model
from redraft.models.fast_llama import FastLlamaRunner
from redraft.rollout.sampler import (
    HFRunner,
    _left_pad,
    derive_seed,
    generate,
    generate_ids,
    row_uniforms,
    sample_next,
)
from redraft.text.tokenizer import encode_prompts


def _prompts(task, n=12):
    return [task.prompt(ex) for ex in task.test[:n]]


def test_fast_path_matches_hf_forward_under_left_padding(micro_model, tokenizer, micro_task):
    model = build_model(ModelSection(preset="micro", layers=2, heads=4, hidden=64), tokenizer).eval()
    ids, mask = _left_pad(encode_prompts(tokenizer, _prompts(micro_task) + ["1+1="]), tokenizer.pad_token_id)
    assert (mask == 0).any()  # the batch really is padded
    fast, hf = FastLlamaRunner(model, ids.shape[1] + 3), HFRunner(model)
    with torch.no_grad():
        torch.testing.assert_close(fast.prefill(ids, mask), hf.prefill(ids, mask), atol=1e-5, rtol=1e-5)
        tokens = torch.arange(len(ids)) % 20
        for _ in range(3):
            torch.testing.assert_close(fast.decode(tokens), hf.decode(tokens), atol=1e-5, rtol=1e-5)


def test_greedy_matches_transformers_generate(micro_model, tokenizer, micro_task):
    prompts = _prompts(micro_task)
    out = generate(micro_model, tokenizer, prompts, SamplingSection(temperature=0, max_new_tokens=6))
    ids, mask = _left_pad(encode_prompts(tokenizer, prompts), tokenizer.pad_token_id)
    with torch.no_grad():
        reference = micro_model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=6,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    for row, tokens in enumerate(out.token_ids):
        expected = reference[row, ids.shape[1] :].tolist()[: len(tokens)]
        assert tokens == expected


def test_logprobs_match_a_full_forward_at_temperature(micro_model, tokenizer, micro_task):
    prompts = _prompts(micro_task, 4)
    temperature = 0.7
    out = generate(micro_model, tokenizer, prompts, SamplingSection(temperature=temperature, max_new_tokens=5), seed=3)
    for prompt_ids, tokens, logprobs in zip(out.prompt_ids, out.token_ids, out.logprobs):
        full = torch.tensor([prompt_ids + tokens])
        with torch.no_grad():
            logits = micro_model(full).logits[0, len(prompt_ids) - 1 : -1] / temperature
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens)[:, None]).squeeze(-1)
        torch.testing.assert_close(torch.tensor(logprobs), expected, atol=1e-4, rtol=1e-4)


def test_seeded_sampling_is_reproducible_and_backends_agree(micro_model, tokenizer, micro_task):
    params = SamplingSection(temperature=1.0, max_new_tokens=6, top_k=10, top_p=0.9)
    a = generate(micro_model, tokenizer, _prompts(micro_task), params, seed=7)
    b = generate(micro_model, tokenizer, _prompts(micro_task), params, seed=7)
    c = generate(micro_model, tokenizer, _prompts(micro_task), params.model_copy(update={"backend": "hf"}), seed=7)
    assert a.token_ids == b.token_ids == c.token_ids


def test_sample_next_truncation():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0]]).repeat(500, 1)
    gen = torch.Generator().manual_seed(0)
    top1, _ = sample_next(logits, 1.0, top_k=1, generator=gen)
    assert (top1 == 0).all()
    top2, _ = sample_next(logits, 1.0, top_k=2, generator=gen)
    assert set(top2.tolist()) == {0, 1}
    # p(0) ~ 0.64, p(1) ~ 0.24: top_p=0.8 keeps exactly tokens 0 and 1.
    nucleus, logprobs = sample_next(logits, 1.0, top_p=0.8, generator=gen)
    assert set(nucleus.tolist()) == {0, 1}
    torch.testing.assert_close(logprobs[nucleus == 0][0], torch.log_softmax(logits[0], -1)[0])
    greedy, _ = sample_next(logits, 0.0)
    assert (greedy == 0).all()


def test_stop_strings_and_eos(micro_model, tokenizer):
    # Make the model always emit "7", then "\n": bias the output layer towards those tokens.
    seven, newline = tokenizer.convert_tokens_to_ids("7"), tokenizer("\n")["input_ids"][0]
    with torch.no_grad():
        micro_model.lm_head.weight.zero_()
    bias = torch.zeros(len(tokenizer))
    bias[seven] = 5.0

    def biased_forward(original):
        def forward(*args, **kwargs):
            out = original(*args, **kwargs)
            out.logits = out.logits + bias
            return out

        return forward

    micro_model.forward = biased_forward(micro_model.forward)
    params = SamplingSection(temperature=0, max_new_tokens=8, stop=["77"], backend="hf")
    out = generate(micro_model, tokenizer, ["1+1=", "2+2="], params)
    assert out.texts == ["", ""] and out.finish_reasons == ["stop", "stop"]
    assert out.token_ids[0] == [seven, seven]
    bias[seven], bias[tokenizer.eos_token_id] = 0.0, 5.0
    out = generate(micro_model, tokenizer, ["1+1="], params)
    assert out.finish_reasons == ["eos"] and out.token_ids[0] == [tokenizer.eos_token_id] and out.texts == [""]
    bias[tokenizer.eos_token_id], bias[newline] = 0.0, 5.0
    out = generate(micro_model, tokenizer, ["1+1="], params.model_copy(update={"stop": []}))
    assert out.finish_reasons == ["length"] and len(out.token_ids[0]) == 8


def test_gpt2_models_use_the_generic_path(tokenizer, micro_task):
    model = build_model(ModelSection(preset="micro", arch="gpt2"), tokenizer)
    out = generate(model, tokenizer, _prompts(micro_task, 3), SamplingSection(max_new_tokens=4))
    assert len(out.texts) == 3 and all(len(t) <= 4 for t in out.token_ids)
    with pytest.raises(Exception, match="plain Llama"):
        generate(model, tokenizer, ["1="], SamplingSection(backend="fast"))


def test_inverse_cdf_sampling_follows_the_truncated_distribution():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.0, -1e9]]).repeat(20_000, 1)
    uniforms = row_uniforms(list(range(len(logits))), 1)[:, 0]
    tokens, _ = sample_next(logits, 1.0, uniforms=uniforms)
    frequencies = torch.bincount(tokens, minlength=5).double() / len(tokens)
    torch.testing.assert_close(frequencies, logits[0].softmax(-1).double(), atol=0.01, rtol=0)
    assert frequencies[4] == 0  # never a zero-probability token
    nucleus, _ = sample_next(logits[:2000], 1.0, top_p=0.8, uniforms=uniforms[:2000])
    assert set(nucleus.tolist()) == {0, 1}


def test_row_seeds_make_each_completion_independent_of_its_batch(micro_model, tokenizer, micro_task):
    prompts = encode_prompts(tokenizer, _prompts(micro_task, 8))
    seeds = [derive_seed(5, row) for row in range(len(prompts))]
    params = SamplingSection(temperature=1.0, max_new_tokens=6)
    whole = generate_ids(micro_model, tokenizer, prompts, params, row_seeds=seeds)
    in_pairs = generate_ids(
        micro_model, tokenizer, prompts, params.model_copy(update={"batch_size": 2}), row_seeds=seeds
    )
    second_half = generate_ids(micro_model, tokenizer, prompts[4:], params, row_seeds=seeds[4:])
    assert whole.token_ids == in_pairs.token_ids
    assert whole.token_ids[4:] == second_half.token_ids
    other = generate_ids(micro_model, tokenizer, prompts, params, row_seeds=[derive_seed(6, row) for row in range(8)])
    assert other.token_ids != whole.token_ids
    assert len({derive_seed(5, row) for row in range(1000)} | {derive_seed(6, row) for row in range(1000)}) == 2000


@pytest.mark.parametrize("backend", ["fast", "hf"])
def test_repeated_prompts_are_prefilled_once_and_sample_as_if_alone(
    micro_model, tokenizer, micro_task, backend, monkeypatch
):
    # GRPO's batches hold every prompt several times: each distinct prompt is prefilled once, and every repeat
    # samples exactly what it would sample alone.
    distinct = encode_prompts(tokenizer, _prompts(micro_task, 3))
    prompts = [distinct[n % 3] for n in (0, 1, 2, 2, 0, 1, 0, 2)]
    seeds = [derive_seed(7, row) for row in range(len(prompts))]
    params = SamplingSection(temperature=1.0, max_new_tokens=6, backend=backend)
    runner = FastLlamaRunner if backend == "fast" else HFRunner
    prefilled, real_prefill = [], runner.prefill
    monkeypatch.setattr(
        runner, "prefill", lambda self, ids, mask: prefilled.append(len(ids)) or real_prefill(self, ids, mask)
    )
    together = generate_ids(micro_model, tokenizer, prompts, params, row_seeds=seeds)
    assert prefilled == [3]
    for row, (prompt, seed) in enumerate(zip(prompts, seeds)):
        alone = generate_ids(micro_model, tokenizer, [prompt], params, row_seeds=[seed])
        assert together.token_ids[row] == alone.token_ids[0]
        assert together.logprobs[row] == pytest.approx(alone.logprobs[0], abs=1e-5)
    assert len({tuple(t) for t in together.token_ids}) > 3  # the repeats of a prompt sample different replies


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_log_probs_of_the_action_columns_skip_the_prompts_logits(tokenizer, arch):
    from redraft.rollout.batch import sequence_logprobs

    model = build_model(ModelSection(preset="micro", arch=arch), tokenizer).eval()
    ids = torch.randint(3, len(tokenizer), (4, 12))
    attention = torch.ones_like(ids)
    attention[2:, 10:] = 0  # right padding
    action = torch.zeros(4, 12)
    action[:, 7:10] = 1.0
    action[0, 5:7] = 1.0  # the earliest action column is 5
    with torch.no_grad():
        full, full_logits = sequence_logprobs(model, ids, attention, 0.7)
        scored, logits = sequence_logprobs(model, ids, attention, 0.7, action)
    assert logits.shape[1] == 12 - 5 and full_logits.shape[1] == 11  # positions 4..10 predict tokens 5..11
    torch.testing.assert_close(scored[:, 5:], full[:, 5:], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(logits, full_logits[:, 4:], atol=1e-6, rtol=1e-6)
    assert (scored[:, :5] == 0).all()
