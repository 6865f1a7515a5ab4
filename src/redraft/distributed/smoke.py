"""A micro training run for checking a multi-process launch (used by tests/distributed and bench/scale.py).

    python -m redraft.distributed.smoke {lm,rl} OUT_DIR STEPS [--resume]
    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 -m redraft.distributed.smoke lm OUT_DIR 4

It trains the micro preset on 2-digit addition (SFT or GRPO) and writes OUT_DIR/metrics.jsonl.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env

from redraft.config import (
    LoggingConfig,
    ModelConfig,
    RLSection,
    TaskConfig,
    TrainConfig,
)
from redraft.envs import SingleTurnEnv
from redraft.fsutil import write_json_atomic
from redraft.models import build_model, save_model
from redraft.tasks import build_task
from redraft.text.tokenizer import train_tokenizer
from redraft.training.data import sft_data
from redraft.training.lm import train_lm
from redraft.training.logging import MetricsLog
from redraft.training.rl import train_rl


def digit_reward(prompts, completions, **fields):
    return [1.0 if c[:1].isdigit() else 0.0 for c in completions]


def main(kind: str, out_dir: Path, steps: int, resume: bool) -> None:
    # The same process group the trainers' Accelerator will use (CPU mode when the launch asks for it).
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))
    task = build_task(TaskConfig(train_size=200, val_size=16, test_size=16, max_digits=2))
    tokenizer = train_tokenizer(task.corpus(), vocab_size=280)
    torch.manual_seed(0)
    model = build_model(ModelConfig(preset="micro"), tokenizer)
    log = MetricsLog(out_dir / "metrics.jsonl")
    quiet = LoggingConfig(progress=False)
    if kind == "lm":
        def sft(split):
            examples = task.split(split)
            return sft_data(tokenizer, [task.prompt(e) for e in examples], [e.target for e in examples], 64)

        cfg = TrainConfig.model_validate({
            "max_steps": steps, "batch_size": 16, "grad_accum_steps": 2, "log_every": 1, "eval_every": 2,
            "save_every": 2, "optim": {"lr": 3e-3, "warmup_steps": 1},
        })
        train_lm(stage="sft", model=model, tokenizer=tokenizer, train=sft("train"), val=sft("val"), cfg=cfg,
                 out_dir=out_dir, seed=0, log=log, logging=quiet, resume=resume)
    else:
        start = out_dir / "start"
        with state.main_process_first():
            if not start.exists():
                save_model(model, tokenizer, start)
        cfg = RLSection.model_validate({
            "algorithm": "grpo", "iterations": steps, "prompts_per_iteration": 8, "samples_per_prompt": 4,
            "max_new_tokens": 2, "minibatch_size": 16, "eval_problems": 0, "save_every": 2, "kl_coef": 0.01,
            "optim": {"lr": 1e-2, "warmup_steps": 0},
        })
        train_rl(model_path=start, tokenizer=tokenizer, task=task, cfg=cfg, out_dir=out_dir / "rl", seed=0, log=log,
                 logging=quiet, resume=resume, env_factory=lambda: SingleTurnEnv(task, digit_reward))
    if state.is_main_process:  # lets the caller check that the launch really ran N processes
        write_json_atomic(out_dir / "launch.json", {"processes": state.num_processes, "mode": str(state.distributed_type)})


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), "--resume" in sys.argv[4:])
