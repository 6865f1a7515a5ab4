"""Time to accuracy: redraft's GRPO vs TRL's GRPOTrainer from the same SFT checkpoint.

Both sides start from ``--model`` (the main job's SFT model by default), train on the main job's task
(the built-in defaults: `redraft config show run`) with the same settings — 64 prompts × 8 samples
per step, the main job's answer budget (rl.max_new_tokens), temperature 1, lr 1e-4 constant, AdamW
(0.9, 0.95), grad clip 1, β = 0, one update per batch — and measure greedy accuracy on the validation problems every
``--eval-every`` steps with the same evaluator (redraft's greedy decoder and the task's checker).
The clock counts training only (generation included), not the evaluations. Each side runs in its
own subprocess; rounds alternate which side goes first. Prints JSON: each side's accuracy curve
against training seconds, the seconds each needed to gain ``--gain`` points over the start, and the
median ratio TRL ÷ redraft of those seconds (> 1: redraft is faster) with its spread.

TRL lives in its own virtual environment (bench/README.md); redraft never depends on it:

    python -m venv --system-site-packages bench/.venv-trl
    bench/.venv-trl/bin/pip install -c constraints-cpu.txt trl==1.16.0
    python bench/time_to_accuracy.py --model runs/main/sft/model --steps 60 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TRL_PYTHON = BENCH / ".venv-trl" / "bin" / "python"
MARK = "TIME_TO_ACCURACY "
LR = 1e-4


def evaluator(args):
    from common import main_job_task

    from redraft.evaluation.evaluate import greedy_accuracy
    from redraft.text.tokenizer import load_tokenizer

    task = main_job_task()
    tokenizer = load_tokenizer(args.model)
    problems = task.val[: args.eval_problems]
    return (
        task,
        tokenizer,
        lambda model: greedy_accuracy(model, tokenizer, task, problems, max_new_tokens=args.new_tokens),
    )


def worker_redraft(args) -> list[tuple[float, float]]:
    """redraft's train_rl logs iteration_s (sampling + scoring + update, no evaluation) and val_accuracy."""
    from redraft.config import LoggingSection, OptimSection, RLSection
    from redraft.training.logging import MetricsLog
    from redraft.training.rl import train_rl

    task, tokenizer, accuracy = evaluator(args)
    from redraft.models import load_model

    curve = [(0.0, accuracy(load_model(args.model)))]
    cfg = RLSection(
        algorithm="grpo",
        iterations=args.steps,
        prompts_per_iteration=args.prompts,
        samples_per_prompt=args.samples,
        max_new_tokens=args.new_tokens,
        temperature=1.0,
        minibatch_size=args.prompts * args.samples,
        kl_coef=0.0,
        eval_every=args.eval_every,
        eval_problems=args.eval_problems,
        save_every=10**6,
        log_every=1,
        optim=OptimSection(lr=LR, warmup_steps=0, weight_decay=0.0, min_lr_ratio=1.0),
    )
    with tempfile.TemporaryDirectory() as out:
        log = MetricsLog(Path(out) / "metrics.jsonl")
        train_rl(
            model_path=args.model,
            tokenizer=tokenizer,
            task=task,
            cfg=cfg,
            out_dir=out,
            seed=args.seed,
            log=log,
            logging=LoggingSection(progress=False),
        )
        clock = 0.0
        for record in log.read("rl"):
            clock += record["iteration_s"]
            if "val_accuracy" in record:
                curve.append((clock, record["val_accuracy"]))
    return curve


def worker_trl(args) -> list[tuple[float, float]]:
    """TRL's GRPOTrainer; a callback pauses the clock to evaluate every eval_every steps."""
    from common import train_trl_grpo
    from datasets import Dataset
    from transformers import TrainerCallback

    from redraft.tasks.base import answers_match, extract_answer

    task, tokenizer, accuracy = evaluator(args)
    data = Dataset.from_dict({"prompt": [task.prompt(e) for e in task.train], "answer": [e.answer for e in task.train]})

    def checker(prompts, completions, answer, **kw):
        return [float(answers_match(extract_answer(c, task.match), a, task.match)) for c, a in zip(completions, answer)]

    class Clock(TrainerCallback):
        def __init__(self):
            self.elapsed, self.mark, self.curve = 0.0, None, []

        def on_step_begin(self, args_, state, control, model=None, **kw):
            self.mark = time.perf_counter()

        def on_step_end(self, args_, state, control, model=None, **kw):
            self.elapsed += time.perf_counter() - self.mark
            if state.global_step % args.eval_every == 0 or state.global_step == args.steps:
                was_training = model.training
                self.curve.append((self.elapsed, accuracy(model.eval())))
                model.train(was_training)

    from redraft.models import load_model

    clock = Clock()
    clock.curve.append((0.0, accuracy(load_model(args.model))))
    settings = dict(batch_rows=args.prompts * args.samples, lr=LR, seed=args.seed, gradient_checkpointing=False)
    train_trl_grpo(
        args.model,
        checker,
        data,
        tokenizer,
        clock,
        settings,
        max_steps=args.steps,
        num_generations=args.samples,
        max_completion_length=args.new_tokens,
    )
    return clock.curve


WORKERS = {"redraft": worker_redraft, "trl": worker_trl}


def run_side(name: str, args) -> dict:
    python = str(TRL_PYTHON) if name == "trl" else sys.executable
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), TOKENIZERS_PARALLELISM="false")
    cmd = [
        python,
        __file__,
        "--worker",
        name,
        "--model",
        args.model,
        "--steps",
        str(args.steps),
        "--eval-every",
        str(args.eval_every),
        "--eval-problems",
        str(args.eval_problems),
        "--prompts",
        str(args.prompts),
        "--samples",
        str(args.samples),
        "--new-tokens",
        str(args.new_tokens),
        "--seed",
        str(args.seed),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    if proc.returncode or not lines:
        return {"error": f"{name} exited {proc.returncode}", "stderr_tail": (proc.stderr or proc.stdout)[-3000:]}
    curve = json.loads(lines[-1][len(MARK) :])
    start = curve[0][1]
    reached = next((seconds for seconds, acc in curve if acc - start >= args.gain / 100), None)
    return {
        "curve": [[round(s, 1), round(a, 4)] for s, a in curve],
        "seconds_to_gain": reached,
        "final_gain_points": round(100 * (curve[-1][1] - start), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/main/sft/model", help="the SFT checkpoint both sides start from")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--eval-every", type=int, default=10)
    parser.add_argument("--eval-problems", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, help="answer budget (default: the main job's rl.max_new_tokens)")
    parser.add_argument("--gain", type=float, default=10.0, help="points of greedy accuracy to reach")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; each alternates which side goes first")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.new_tokens is None:
        from redraft.config import load_config

        args.new_tokens = load_config("run").rl.max_new_tokens
    import torch

    torch.set_num_threads(args.threads)
    if args.worker:
        print(MARK + json.dumps(WORKERS[args.worker](args)), flush=True)
        return
    if not TRL_PYTHON.exists():
        sys.exit(f"no TRL venv at {TRL_PYTHON}: see bench/README.md")
    rounds = []
    for index in range(args.rounds):
        order = ["redraft", "trl"] if index % 2 == 0 else ["trl", "redraft"]
        rounds.append({name: run_side(name, args) for name in order})
    ratios = [
        r["trl"]["seconds_to_gain"] / r["redraft"]["seconds_to_gain"]
        for r in rounds
        if r["trl"].get("seconds_to_gain") and r["redraft"].get("seconds_to_gain")
    ]
    summary = {"gain_points": args.gain, "rounds": rounds}
    if ratios:
        summary["trl_over_redraft_seconds"] = {
            "median": statistics.median(ratios),
            "min": min(ratios),
            "max": max(ratios),
            "target": ">= 1 (redraft reaches the gain in no more wall-clock than TRL)",
        }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
