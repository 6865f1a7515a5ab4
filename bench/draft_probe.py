"""Does a visible carry-free draft make the true sum easier to learn? A plain transformers + torch control.

Two supervised formats on padded n-digit addition, answer most-significant digit first, the `small` shape
(4 layers, d 256, 4 heads), AdamW lr 1e-3 constant, batch 128, fresh problems every step:

- single: ``A+B=`` -> S, what a single-attempt model must learn;
- draft:  ``A+B=`` D ``\\nCheck: A+B=`` -> S, where D is the carry-free digit sum (what the main job's SFT
  model writes, imitating its teacher's slips), loss on S only: what a second attempt must learn from
  that draft.

Prints one JSON line per check: greedy accuracy of S on 500 held-out problems and the wall-clock so far.
Example: python bench/draft_probe.py --format draft --digits 5 --steps 600 --seed 0
"""

import argparse
import json
import random
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

CHARS = "0123456789+=\nChekc: "
STOI = {c: i + 1 for i, c in enumerate(CHARS)}
EOS = len(CHARS) + 1


def problem(rng: random.Random, digits: int, fmt: str) -> tuple[str, str]:
    a, b = rng.randrange(10**digits), rng.randrange(10**digits)
    left, right = str(a).zfill(digits), str(b).zfill(digits)
    draft = "0" + "".join(str((int(x) + int(y)) % 10) for x, y in zip(left, right))
    question = f"{left}+{right}="
    prefix = question if fmt == "single" else f"{question}{draft}\nCheck: {question}"
    return prefix, str(a + b).zfill(digits + 1)


@torch.no_grad()
def accuracy(model, test: list[tuple[str, str]], digits: int) -> float:
    model.eval()
    ids = torch.tensor([[STOI[c] for c in prefix] for prefix, _ in test])
    for _ in range(digits + 1):
        ids = torch.cat([ids, model(input_ids=ids).logits[:, -1].argmax(-1, keepdim=True)], 1)
    written = [
        "".join(CHARS[i - 1] if 0 < i <= len(CHARS) else "?" for i in row) for row in ids[:, -(digits + 1) :].tolist()
    ]
    model.train()
    return sum(w == s for w, (_, s) in zip(written, test)) / len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--format", choices=["single", "draft"], required=True)
    parser.add_argument("--digits", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--check-every", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    config = LlamaConfig(hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=EOS + 1, max_position_embeddings=128,
                         tie_word_embeddings=True)  # fmt: skip
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0)
    test = [problem(random.Random(10**6 + i), args.digits, args.format) for i in range(500)]
    started = time.perf_counter()
    for step in range(1, args.steps + 1):
        rows = [problem(rng, args.digits, args.format) for _ in range(128)]
        ids = torch.tensor([[STOI[c] for c in p + s] + [EOS] for p, s in rows])
        mask = torch.tensor([[0.0] * len(p) + [1.0] * (len(s) + 1) for p, s in rows])[:, 1:]
        logits = model(input_ids=ids).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, 1:], reduction="none")
        loss = (loss * mask).sum() / mask.sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if step % args.check_every == 0:
            seconds = time.perf_counter() - started
            record = {"format": args.format, "digits": args.digits, "seed": args.seed, "step": step}
            record |= {
                "loss": round(loss.item(), 4),
                "accuracy": accuracy(model, test, args.digits),
                "seconds": round(seconds),
            }
            print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
