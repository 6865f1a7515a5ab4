"""RL with rollouts sampled on Ray actors (``rl.generation_backend: ray``) against local sampling."""

from __future__ import annotations

import pytest
import torch

from redraft.config import LoggingSection, ModelSection, RLSection
from redraft.envs import SingleTurnEnv
from redraft.models import build_model, save_model
from redraft.training.logging import MetricsLog
from redraft.training.rl import train_rl

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


def _starts_with_a_digit(prompts, completions, **fields):
    return [1.0 if c[:1].isdigit() else 0.0 for c in completions]


def test_ray_rollouts_train_exactly_like_local_ones(tmp_path, micro_task, tokenizer):
    torch.manual_seed(0)
    start = tmp_path / "start"
    save_model(build_model(ModelSection(preset="micro"), tokenizer), tokenizer, start)

    def run(backend: str) -> list[dict]:
        cfg = RLSection.model_validate({
            "algorithm": "grpo", "iterations": 3, "prompts_per_iteration": 8, "samples_per_prompt": 4,
            "max_new_tokens": 2, "minibatch_size": 32, "eval_problems": 0, "save_every": 3,
            "optim": {"lr": 1e-2, "warmup_steps": 0}, "generation_backend": backend, "ray_workers": 2,
        })  # fmt: skip
        log = MetricsLog(tmp_path / backend / "metrics.jsonl")
        train_rl(
            model_path=start,
            tokenizer=tokenizer,
            task=micro_task,
            cfg=cfg,
            out_dir=tmp_path / backend,
            seed=0,
            log=log,
            logging=LoggingSection(progress=False),
            env_factory=lambda: SingleTurnEnv(micro_task, _starts_with_a_digit),
        )
        return log.read("rl")

    local = run("local")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run("ray")  # the policy's weights go to the actors after every iteration
    finally:
        ray.shutdown()
    assert [r["reward"] for r in remote] == [r["reward"] for r in local]
    assert any(r["reward"] > 0 for r in local)
    for key in ("approx_kl", "policy_loss", "grad_norm", "response_length"):
        torch.testing.assert_close(
            torch.tensor([r[key] for r in remote]), torch.tensor([r[key] for r in local]), rtol=1e-4, atol=1e-6
        )
