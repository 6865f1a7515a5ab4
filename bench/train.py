"""Training throughput: redraft's LM trainer vs a bare torch forward+backward+AdamW loop.

Same model (reset to the same initial weights before every run), same batches (SFT sequences of the built-in
task), same optimizer settings. Both sides are timed alike: the first ``--warmup`` steps are left out, the rest
is tokens ÷ seconds (redraft's from its logged windows of ``--warmup`` steps). Each round runs both once, the
order reversed every other round; the slowdown is the median of the per-round ratios with min–max. Prints JSON.
``--mixed-precision bf16`` runs both under bfloat16 autocast (redraft: ``mixed_precision: bf16``); the JSON also
gives the fp32 and bf16 matmul rates of the model's shapes, which bound what bf16 can gain.
Usage: python bench/train.py [--preset small] [--steps 60] [--batch 64] [--rounds 5] [--mixed-precision bf16]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import bench_setup, interleaved_rounds, matmul_rate, ratio_spread

from redraft.config import LoggingSection, TrainSection
from redraft.data.sequences import collate, micro_batch_rows, sft_data
from redraft.training.lm import train_lm
from redraft.training.logging import MetricsLog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="steps left out of both sides' rates")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mixed-precision", choices=["no", "bf16"], default="no", help="both sides alike")
    args = parser.parse_args()
    bf16 = args.mixed_precision == "bf16"

    task, tokenizer, model = bench_setup(args.preset)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    data = sft_data(tokenizer, [task.prompt(e) for e in task.train], [e.target for e in task.train], 64)
    batches = [collate(data, micro_batch_rows(len(data), args.batch, 0, i)) for i in range(args.steps)]
    timed_tokens = sum(int(b["attention_mask"].sum()) for b in batches[args.warmup :])
    rates: dict[str, list[float]] = {"bare": [], "redraft": []}

    def bare() -> float:
        """Forward, masked next-token loss, backward, clip, AdamW."""
        model.load_state_dict(initial)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
        start = 0.0
        for step, batch in enumerate(batches):
            if step == args.warmup:
                start = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
            per_token = F.cross_entropy(
                logits[:, :-1].flatten(0, 1), batch["input_ids"][:, 1:].flatten(), reduction="none"
            )
            mask = batch["loss_mask"][:, 1:].flatten()
            loss = (per_token * mask).sum() / mask.sum()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        rates["bare"].append(timed_tokens / seconds)
        return seconds

    def ours() -> float:
        model.load_state_dict(initial)
        cfg = TrainSection(
            max_steps=args.steps,
            batch_size=args.batch,
            log_every=args.warmup,
            save_every=10**6,
            eval_every=10**6,
            mixed_precision=args.mixed_precision,
        )
        with tempfile.TemporaryDirectory() as out:
            log = MetricsLog(Path(out) / "metrics.jsonl")
            start = time.perf_counter()
            train_lm(stage="sft", model=model, tokenizer=tokenizer, train=data, val=None, cfg=cfg, out_dir=out,
                     seed=0, log=log, logging=LoggingSection(progress=False))  # fmt: skip
            seconds = time.perf_counter() - start
            windows = [r["tokens_per_s"] for r in log.read() if "tokens_per_s" in r][1:]  # the first: warm-up
        rates["redraft"].append(statistics.fmean(windows))
        return seconds

    interleaved_rounds({"bare": bare, "redraft": ours}, args.rounds)
    rates = {name: values[1:] for name, values in rates.items()}  # the warm-up call of each is not a round
    slowdowns = [b / r for b, r in zip(rates["bare"], rates["redraft"])]
    shape, tokens = model.config, timed_tokens // (args.steps - args.warmup)  # a batch's tokens
    matmul = {
        name: round(matmul_rate(torch.get_num_threads(), tokens, shape.hidden_size, shape.intermediate_size,
                                shape.vocab_size, dtype=dtype) / 1e9)
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))
    }  # fmt: skip
    print(
        json.dumps(
            {
                "benchmark": "train",
                "preset": args.preset,
                "params": sum(p.numel() for p in model.parameters()),
                "steps": args.steps,
                "warmup_steps_left_out": args.warmup,
                "batch": args.batch,
                "threads": torch.get_num_threads(),
                "rounds": args.rounds,
                "mixed_precision": args.mixed_precision,
                "matmul_gflops_per_s": matmul,
                "bare_torch_tokens_per_s": round(statistics.median(rates["bare"])),
                "redraft_tokens_per_s": round(statistics.median(rates["redraft"])),
                "slowdown": ratio_spread(slowdowns),
                "target_within_1.1x_met": statistics.median(slowdowns) <= 1.1,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
