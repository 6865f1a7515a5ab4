"""Sampler throughput: redraft's sampler vs transformers' `model.generate` on the same weights.

Both decode greedily the same number of new tokens for the same prompts, from token ids (tokenisation is outside
the timing on both sides; redraft pads its batch inside the timing, HF gets the padded tensors). Each round runs
every contender once, the order reversed every other round; the speed-up is the median of the per-round ratios
with min–max. The decode bound is the step's matmul FLOPs (2·N per real token, prompt and new ones; the LM head
at the prompt's last position only, as both sides run it) ÷ the fp32 matmul rate measured on the model's shapes.
``--samples 8`` gives the batch GRPO samples: batch ÷ 8 prompts, each repeated 8 times (as TRL's GRPOTrainer
hands them to ``generate``); a prompt's tokens then count once in the bound, as one prefill can serve its repeats.
Prints JSON. Usage: python bench/generate.py [--batch 512] [--samples 1] [--new-tokens 8] [--preset small] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from common import bench_setup, interleaved_rounds, matmul_rate, ratio_spread

from redraft.config import SamplingSection
from redraft.models.build import llama_mlp_width
from redraft.rollout.sampler import _left_pad, generate_ids
from redraft.text.tokenizer import encode_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--samples", type=int, default=1, help="rows per distinct prompt (GRPO: samples per prompt)")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    task, tokenizer, model = bench_setup(args.preset)
    model.eval()
    distinct = encode_prompts(tokenizer, [task.prompt(ex) for ex in task.test[: args.batch // args.samples]])
    prompt_ids = [ids for ids in distinct for _ in range(args.samples)]
    ids, mask = _left_pad(prompt_ids, tokenizer.pad_token_id)
    new_tokens = args.new_tokens
    # A never-emitted EOS keeps every row going for exactly new_tokens steps on both sides.
    never = len(tokenizer) + 1

    def ours(backend: str) -> float:
        params = SamplingSection(temperature=0.0, max_new_tokens=new_tokens, batch_size=args.batch, backend=backend)
        eos = tokenizer.eos_token_id
        tokenizer.eos_token_id = None  # type: ignore[assignment]
        try:
            start = time.perf_counter()
            out = generate_ids(model, tokenizer, prompt_ids, params)
            seconds = time.perf_counter() - start
        finally:
            tokenizer.eos_token_id = eos
        assert all(len(t) == new_tokens for t in out.token_ids)
        return seconds

    def hf() -> float:
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                eos_token_id=never,
                pad_token_id=tokenizer.pad_token_id,
            )
        seconds = time.perf_counter() - start
        assert out.shape[1] == ids.shape[1] + new_tokens
        return seconds

    seconds = interleaved_rounds({"hf": hf, "fast": lambda: ours("fast"), "generic": lambda: ours("hf")}, args.rounds)
    cfg = model.config
    threads = torch.get_num_threads()
    rate = matmul_rate(threads, args.batch, cfg.hidden_size, llama_mlp_width(cfg.hidden_size), cfg.vocab_size)
    n_body = sum(p.numel() for p in model.parameters()) - cfg.vocab_size * cfg.hidden_size  # without the LM head
    real_tokens = sum(len(p) for p in distinct) + len(prompt_ids) * new_tokens
    head_positions = len(prompt_ids) * new_tokens  # the prompt's last position and every new token but the last
    bound_s = (2 * n_body * real_tokens + 2 * cfg.vocab_size * cfg.hidden_size * head_positions) / rate
    generated = len(prompt_ids) * new_tokens
    fast_speedup = ratio_spread([h / f for h, f in zip(seconds["hf"], seconds["fast"])])

    def rate_of(name: str) -> int:
        return round(generated / statistics.median(seconds[name]))

    print(
        json.dumps(
            {
                "benchmark": "generate",
                "preset": args.preset,
                "params": sum(p.numel() for p in model.parameters()),
                "batch": len(prompt_ids),
                "samples_per_prompt": args.samples,
                "new_tokens": new_tokens,
                "threads": threads,
                "rounds": args.rounds,
                "hf_generate_tokens_per_s": rate_of("hf"),
                "redraft_fast_tokens_per_s": rate_of("fast"),
                "redraft_hf_backend_tokens_per_s": rate_of("generic"),
                "speedup_fast_vs_hf_generate": fast_speedup,
                "speedup_hf_backend_vs_hf_generate": ratio_spread(
                    [h / g for h, g in zip(seconds["hf"], seconds["generic"])]
                ),
                "fp32_matmul_gflops": round(rate / 1e9, 1),
                "decode_bound_s": round(bound_s, 3),
                "fast_over_bound": round(statistics.median(seconds["fast"]) / bound_s, 2),
                "hf_over_bound": round(statistics.median(seconds["hf"]) / bound_s, 2),
                "target_1.5x_hf_met": fast_speedup["median"] >= 1.5,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
