"""Micro training runs for checking a multi-process launch (used by tests/distributed and bench/scale.py).

    python -m redraft.testing.smoke TRAINER OUT_DIR STEPS [--resume]
    torchrun --nproc_per_node 2 -m redraft.testing.smoke sft OUT_DIR 4

TRAINER is one of: sft, reward_model, dpo, grpo, rloo, reinforce_pp, ppo, score (SCoRe Stage I
on two-attempt episodes). Each trains the micro preset on 2-digit addition and writes
OUT_DIR/metrics.jsonl; RL runs take one minibatch per iteration, so N processes and one process
make the same update from the same samples.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from redraft.algorithms import stage_credit
from redraft.config import (
    DPOSection,
    LoggingSection,
    ModelSection,
    RewardModelSection,
    RLSection,
    SelfCorrectionSection,
    TaskSection,
    TrainSection,
)
from redraft.data.preferences import PreferencePair
from redraft.data.sequences import sft_data
from redraft.distributed import end_processes, launch_argv, processes
from redraft.envs import SelfCorrectionEnv, SingleTurnEnv
from redraft.fsutil import write_json_atomic
from redraft.models import build_model, save_model
from redraft.models.reward import build_reward_model
from redraft.tasks import Task, build_task
from redraft.text.tokenizer import train_tokenizer
from redraft.training.dpo import train_dpo
from redraft.training.lm import train_lm
from redraft.training.logging import MetricsLog
from redraft.training.reward_model import train_reward_model
from redraft.training.rl import train_rl

RL_TRAINERS = ("grpo", "rloo", "reinforce_pp", "ppo", "score")
TRAINERS = ("sft", "reward_model", "dpo", *RL_TRAINERS)


def digit_reward(prompts, completions, **fields):
    return [1.0 if c[:1].isdigit() else 0.0 for c in completions]


def _train_config(steps: int, **extra) -> TrainSection:
    return TrainSection.model_validate({
        "max_steps": steps, "batch_size": 16, "grad_accum_steps": 2, "log_every": 1, "eval_every": 2,
        "save_every": 2, **extra,
    })  # fmt: skip


def _pairs(task, split: str) -> list[PreferencePair]:
    """The right sum against the same sum off by one in its last digit."""
    return [
        PreferencePair(task.prompt(e), e.target, e.target[:-1] + str((int(e.target[-1]) + 1) % 10))
        for e in task.split(split)
    ]


def launch_command(
    trainer: str, out_dir: Path, steps: int, processes: int, resume: bool = False, threads: int = 1
) -> tuple[list[str], dict[str, str]]:
    """(argv, environment) running this module with ``processes`` CPU processes (gloo when more than one)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["OMP_NUM_THREADS"] = str(threads)
    if processes > 1:
        env["ACCELERATE_USE_CPU"] = "true"
    args = ["-m", "redraft.testing.smoke", trainer, str(out_dir), str(steps)] + (["--resume"] if resume else [])
    return launch_argv(args, processes), env


@dataclass
class _Micro:
    """What every micro training run shares: the task, tokenizer, starting model and run settings."""

    task: Task
    tokenizer: Any
    model: torch.nn.Module
    start: Path  # the starting model, saved
    out_dir: Path
    steps: int
    resume: bool
    log: MetricsLog
    quiet: LoggingSection = field(default_factory=lambda: LoggingSection(progress=False))

    def common(self) -> dict[str, Any]:
        return {"out_dir": self.out_dir, "seed": 0, "log": self.log, "logging": self.quiet, "resume": self.resume}


def _sft(run: _Micro) -> None:
    def data(split):
        examples = run.task.split(split)
        return sft_data(run.tokenizer, [run.task.prompt(e) for e in examples], [e.target for e in examples], 64)

    cfg = _train_config(run.steps, optim={"lr": 3e-3, "warmup_steps": 1})
    train_lm(
        stage="sft",
        model=run.model,
        tokenizer=run.tokenizer,
        train=data("train"),
        val=data("val"),
        cfg=cfg,
        **run.common(),
    )


def _reward_model(run: _Micro) -> None:
    torch.manual_seed(0)
    reward_model = build_reward_model(run.tokenizer, ModelSection(preset="micro"), fresh=True, head="classifier")
    cfg = RewardModelSection(head="classifier", train=_train_config(run.steps, optim={"lr": 1e-3, "warmup_steps": 1}))
    train_reward_model(
        model=reward_model,
        tokenizer=run.tokenizer,
        train_pairs=_pairs(run.task, "train"),
        val_pairs=_pairs(run.task, "val"),
        cfg=cfg,
        **run.common(),
    )


def _dpo(run: _Micro) -> None:
    train = _train_config(run.steps, optim={"lr": 1e-3, "warmup_steps": 1})
    cfg = DPOSection(select_by="loss", eval_problems=0, kl_prompts=0, train=train)
    train_dpo(
        model_path=run.start,
        tokenizer=run.tokenizer,
        train_pairs=_pairs(run.task, "train"),
        val_pairs=_pairs(run.task, "val"),
        cfg=cfg,
        **run.common(),
    )


def _rl(run: _Micro, trainer: str) -> None:
    cfg = RLSection.model_validate({
        "algorithm": "rloo" if trainer == "score" else trainer, "iterations": run.steps, "prompts_per_iteration": 8,
        "samples_per_prompt": 4, "max_new_tokens": 2, "minibatch_size": 32, "eval_problems": 0,
        "save_every": 2, "kl_coef": 0.01, "optim": {"lr": 1e-2, "warmup_steps": 0},
    })  # fmt: skip
    protocol, task = SelfCorrectionSection(), run.task
    if trainer == "score":

        def env_factory():
            return SelfCorrectionEnv(task, protocol.attempts, protocol.instruction, reward_fn=digit_reward)

        credit = stage_credit(1, protocol.attempts, alpha=10.0, beta1=0.01, beta2=0.1)
    else:
        env_factory, credit = (lambda: SingleTurnEnv(task, digit_reward)), None
    common = {**run.common(), "out_dir": run.out_dir / "rl"}
    train_rl(
        model_path=run.start,
        tokenizer=run.tokenizer,
        task=task,
        cfg=cfg,
        env_factory=env_factory,
        credit=credit,
        **common,
    )


def main(trainer: str, out_dir: Path, steps: int, resume: bool) -> None:
    if trainer not in TRAINERS:
        raise SystemExit(f"unknown trainer {trainer!r}; choose one of {', '.join(TRAINERS)}")
    state = processes()  # the process group the trainers' Accelerator will use
    task = build_task(TaskSection(train_size=200, val_size=16, test_size=16, max_digits=2))
    tokenizer = train_tokenizer(task.corpus(), vocab_size=280)
    torch.manual_seed(0)
    model = build_model(ModelSection(preset="micro"), tokenizer)
    log = MetricsLog(out_dir / "metrics.jsonl")
    run = _Micro(task, tokenizer, model, start=out_dir / "start", out_dir=out_dir, steps=steps, resume=resume, log=log)
    with state.main_process_first():
        if not run.start.exists():
            save_model(model, tokenizer, run.start)
    {"sft": _sft, "reward_model": _reward_model, "dpo": _dpo}.get(trainer, lambda run: _rl(run, trainer))(run)
    if state.is_main_process:  # lets the caller check that the launch really ran N processes
        write_json_atomic(
            out_dir / "launch.json", {"processes": state.num_processes, "mode": str(state.distributed_type)}
        )
    end_processes()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), "--resume" in sys.argv[4:])
