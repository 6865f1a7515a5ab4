"""Training throughput: redraft's LM trainer vs a bare torch forward+backward+AdamW loop.

Same model (built from the same seed), same batches (SFT sequences of the built-in task), same
optimizer settings. Prints JSON with tokens/s for both and the ratio.
Usage: python bench/train.py [--preset small] [--steps 60] [--batch 64]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import bench_setup

from redraft.config import LoggingSection, TrainSection
from redraft.data.sequences import collate, micro_batch_rows, sft_data
from redraft.training.lm import train_lm
from redraft.training.logging import MetricsLog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()

    task, tokenizer, model = bench_setup(args.preset)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    data = sft_data(tokenizer, [task.prompt(e) for e in task.train], [e.target for e in task.train], 64)
    batches = [collate(data, micro_batch_rows(len(data), args.batch, 0, i)) for i in range(args.steps)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)

    # Bare loop: forward, masked next-token loss, backward, clip, AdamW.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
    model.train()
    start = time.perf_counter()
    for batch in batches:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        per_token = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch["input_ids"][:, 1:].flatten(), reduction="none")
        mask = batch["loss_mask"][:, 1:].flatten()
        loss = (per_token * mask).sum() / mask.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    bare_seconds = time.perf_counter() - start

    model.load_state_dict(initial)
    cfg = TrainSection(max_steps=args.steps, batch_size=args.batch, log_every=10, save_every=10**6, eval_every=10**6)
    with tempfile.TemporaryDirectory() as out:
        log = MetricsLog(Path(out) / "metrics.jsonl")
        start = time.perf_counter()
        result = train_lm(
            stage="sft",
            model=model,
            tokenizer=tokenizer,
            train=data,
            val=None,
            cfg=cfg,
            out_dir=out,
            seed=0,
            log=log,
            logging=LoggingSection(progress=False),
        )
        ours_seconds = time.perf_counter() - start
        window_rates = [r["tokens_per_s"] for r in log.read() if "tokens_per_s" in r][1:]  # first window has warm-up

    print(
        json.dumps(
            {
                "benchmark": "train",
                "preset": args.preset,
                "params": sum(p.numel() for p in model.parameters()),
                "steps": args.steps,
                "batch": args.batch,
                "threads": torch.get_num_threads(),
                "bare_torch_tokens_per_s": round(tokens / bare_seconds),
                "redraft_tokens_per_s_whole_call": round(tokens / ours_seconds),
                "redraft_tokens_per_s_steady": round(sum(window_rates) / len(window_rates)),
                "slowdown_whole_call": round(ours_seconds / bare_seconds, 3),
                "slowdown_steady": round(tokens / bare_seconds / (sum(window_rates) / len(window_rates)), 3),
                "redraft_steps": result.steps,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
