"""GRPO with the math-verify reward on the built-in GSM8K-style word problems, from the CLI.

Runs ``redraft sft`` (a fresh ``small`` model and its own tokenizer on the worked solutions), then
``redraft rl`` from that model with ``task.reward=math``, then ``redraft eval`` of both on the same test
problems, into ``<output-dir>/<prefix>-{sft,rl,eval-sft,eval-rl}`` (finished runs are reused). Prints JSON:
greedy test accuracy and pass@1 of each model with their 95% CIs, RL's paired gain over SFT, the sampled
reward over RL's iterations and each stage's wall-clock. Run it alone on the machine.

    python bench/math_grpo.py                      # about 20 minutes on 2 cores
    python bench/math_grpo.py --rl-iterations 80   # one knob at a time
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from redraft.evaluation.metrics import paired_difference_ci95

TASK = ["task.kind=math", "task.train_size=20000", "task.val_size=128", "task.test_size=500"]


def redraft(command: str, name: str, output_dir: Path, sets: list[str], model: str | None = None) -> Path:
    """Run one redraft command into ``output_dir/name`` unless it finished there before."""
    run_dir = output_dir / name
    if not (run_dir / "result.json").is_file() and not (run_dir / "eval.json").is_file():
        args = [sys.executable, "-m", "redraft", command, "--name", name, "--overwrite"]
        args += ["--model", model] if model else []
        for item in [f"run.output_dir={output_dir}", "logging.progress=false", *TASK, *sets]:
            args += ["--set", item]
        subprocess.run(args, check=True)
    return run_dir


def correct_by_problem(eval_dir: Path) -> list[bool]:
    rows = [json.loads(line) for line in (eval_dir / "samples.jsonl").read_text().splitlines()]
    return [bool(row["greedy_correct"]) for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=Path("runs"))
    parser.add_argument("--prefix", default="math-grpo")
    parser.add_argument("--sft-steps", type=int, default=800)
    parser.add_argument("--rl-iterations", type=int, default=40)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    out_dir, prefix = args.output_dir.resolve(), args.prefix
    # SFT: constant lr after a short warm-up, no weight decay (docs/main-job.md: the recipe that crosses the
    # loss plateau); 72 new tokens hold a worked solution and its "#### n" line.
    sft = redraft("sft", f"{prefix}-sft", out_dir, [
        "tokenizer.vocab_size=1000", "model.preset=small", f"train.max_steps={args.sft_steps}",
        "train.batch_size=64", "train.optim.lr=1e-3", "train.optim.warmup_steps=20", "train.optim.weight_decay=0",
        "train.optim.min_lr_ratio=1.0", "train.eval_every=200", "train.eval_accuracy_problems=64",
        "train.max_new_tokens=72", "train.save_every=200",
    ])  # fmt: skip
    rl = redraft("rl", f"{prefix}-rl", out_dir, [
        "task.reward=math", "rl.algorithm=grpo", f"rl.iterations={args.rl_iterations}",
        "rl.prompts_per_iteration=32", "rl.samples_per_prompt=8", "rl.max_new_tokens=72", "rl.optim.lr=1e-4",
        "rl.eval_every=10", "rl.eval_problems=128",
    ], model=str(sft / "model"))  # fmt: skip
    evaluations = {}
    for name, run in (("sft", sft), ("rl", rl)):
        eval_dir = redraft("eval", f"{prefix}-eval-{name}", out_dir, ["eval.k=1", "eval.max_new_tokens=72"],
                           model=str(run / "model"))  # fmt: skip
        evaluations[name] = (json.loads((eval_dir / "eval.json").read_text()), correct_by_problem(eval_dir))
    records = [json.loads(line) for line in (rl / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward"] for r in records if r.get("stage") == "rl" and "reward" in r]
    gain, gain_ci = paired_difference_ci95(evaluations["rl"][1], evaluations["sft"][1])
    report = {
        "task": "math (GSM8K-style word problems), reward math-verify",
        "test_problems": evaluations["sft"][0]["num_problems"],
        "models": {
            name: {
                "greedy_accuracy": ev["greedy_accuracy"],
                "greedy_accuracy_ci95": ev["greedy_accuracy_ci95"],
                "pass@1": ev["pass_at_k"]["1"],
            }
            for name, (ev, _) in evaluations.items()
        },
        "rl_minus_sft": {"points": 100 * gain, "ci95": 100 * gain_ci},
        "rl_reward_first_5": sum(rewards[:5]) / 5,
        "rl_reward_last_5": sum(rewards[-5:]) / 5,
        "seconds": {
            stage: json.loads((run / "result.json").read_text())["seconds"] for stage, run in (("sft", sft), ("rl", rl))
        },
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
