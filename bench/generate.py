"""Sampler throughput: redraft's sampler vs transformers' `model.generate` on the same weights.

Prints JSON. Both decode greedily the same number of new tokens for the same left-padded batch.
Usage: python bench/generate.py [--batch 512] [--new-tokens 8] [--preset small] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from common import bench_setup

from redraft.config import SamplingSection
from redraft.rollout.sampler import _left_pad, generate
from redraft.text.tokenizer import encode_prompts


def best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Fastest of `repeats` runs each, interleaved so machine noise hits every contender alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: min(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    task, tokenizer, model = bench_setup(args.preset)
    model.eval()
    prompts = [task.prompt(ex) for ex in task.test[: args.batch]]
    ids, mask = _left_pad(encode_prompts(tokenizer, prompts), tokenizer.pad_token_id)
    new_tokens = args.new_tokens
    # A never-emitted EOS keeps every row going for exactly new_tokens steps on both sides.
    never = len(tokenizer) + 1

    def ours(backend: str):
        params = SamplingSection(temperature=0.0, max_new_tokens=new_tokens, batch_size=args.batch, backend=backend)
        eos = tokenizer.eos_token_id
        tokenizer.eos_token_id = None  # type: ignore[assignment]
        try:
            out = generate(model, tokenizer, prompts, params)
        finally:
            tokenizer.eos_token_id = eos
        assert all(len(t) == new_tokens for t in out.token_ids)

    def hf():
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
        assert out.shape[1] == ids.shape[1] + new_tokens

    generated = args.batch * new_tokens
    best = best_times({"hf": hf, "fast": lambda: ours("fast"), "generic": lambda: ours("hf")}, args.repeats)
    t_hf, t_fast, t_generic = best["hf"], best["fast"], best["generic"]
    print(
        json.dumps(
            {
                "benchmark": "generate",
                "preset": args.preset,
                "params": sum(p.numel() for p in model.parameters()),
                "batch": args.batch,
                "new_tokens": new_tokens,
                "threads": torch.get_num_threads(),
                "hf_generate_tokens_per_s": round(generated / t_hf),
                "redraft_fast_tokens_per_s": round(generated / t_fast),
                "redraft_hf_backend_tokens_per_s": round(generated / t_generic),
                "speedup_fast_vs_hf_generate": round(t_hf / t_fast, 2),
                "speedup_hf_backend_vs_hf_generate": round(t_hf / t_generic, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
