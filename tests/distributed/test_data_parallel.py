"""Trainers under ``accelerate launch`` with 2 CPU processes (gloo) against the same run in 1 process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from redraft.algorithms import group_advantages
from redraft.distributed import end_processes, rank_share, require_divisible
from redraft.errors import ConfigError
from redraft.testing.smoke import RL_TRAINERS, launch_command

# Two ranks sum their halves of a batch in a different order than one process does: float32
# rounding only, which the Adam updates carry along a few steps. Absolute tolerance for numbers that
# are zero up to rounding (RL losses with zero-mean advantages, the first steps' KL).
RTOL, ATOL = 1e-4, 1e-6
CURVES = ("loss", "val_loss", "val_accuracy", "grad_norm", "policy_loss", "value_loss", "reward", "kl", "accuracy_t2")


def _launch(trainer: str, out_dir: Path, steps: int, processes: int, resume: bool = False) -> list[dict]:
    command, env = launch_command(trainer, out_dir, steps, processes, resume)
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((out_dir / "launch.json").read_text())["processes"] == processes
    return [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines()]


def _curve(records: list[dict], key: str) -> list[tuple[int, float]]:
    return [(r["step"], r[key]) for r in records if key in r]


def test_rank_shares_keep_whole_groups_and_their_advantages():
    prompts, group, world = list(range(8)), 4, 2
    scores = torch.rand(len(prompts) * group, generator=torch.Generator().manual_seed(0))
    shares = [rank_share(prompts, rank, world) for rank in range(world)]
    assert [p for share in shares for p in share] == prompts
    local = [group_advantages(scores[r * 16 : (r + 1) * 16], group, scale=True) for r in range(world)]
    torch.testing.assert_close(torch.cat(local), group_advantages(scores, group, scale=True))


def test_end_processes_closes_the_process_group_and_is_a_no_op_without_one(tmp_path):
    end_processes()  # one process, no group: nothing to do
    torch.distributed.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    end_processes()
    assert not torch.distributed.is_initialized()


def test_uneven_split_is_a_clear_error():
    with pytest.raises(ConfigError, match="multiple of 2"):
        require_divisible("rl.prompts_per_iteration", 7, 2)


def _assert_same_curves(actual: list[dict], expected: list[dict]) -> None:
    compared = 0
    for key in CURVES:
        expected_curve = _curve(expected, key)
        actual_curve = _curve(actual, key)
        assert [step for step, _ in actual_curve] == [step for step, _ in expected_curve], (
            key
        )  # once per step, by rank 0
        if expected_curve:
            actual_values = torch.tensor([value for _, value in actual_curve])
            expected_values = torch.tensor([value for _, value in expected_curve])
            assert torch.allclose(actual_values, expected_values, rtol=RTOL, atol=ATOL), (
                key,
                actual_values,
                expected_values,
            )
            compared += 1
    assert compared >= 3


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["reward_model", "dpo", "rloo", "reinforce_pp", "ppo", "score"])
def test_two_processes_give_the_one_process_curves(tmp_path, trainer):
    """Same global batch and seed: the same update, so the same curves (RL: the same samples too)."""
    one = _launch(trainer, tmp_path / "one", 4, processes=1)
    two = _launch(trainer, tmp_path / "two", 4, processes=2)
    _assert_same_curves(two, one)
    if trainer in RL_TRAINERS:
        assert any(r["reward"] > 0 for r in one)  # the curves compared are not all zeros


@pytest.mark.slow
@pytest.mark.parametrize("trainer", ["sft", "grpo"])
def test_two_process_checkpoints_resume_with_one_process(tmp_path, trainer):
    one = _launch(trainer, tmp_path / "one", 4, processes=1)
    two = _launch(trainer, tmp_path / "two", 4, processes=2)
    _assert_same_curves(two, one)
    checkpoints = tmp_path / "two" / ("rl/checkpoints" if trainer in RL_TRAINERS else "checkpoints")
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-0000002", "step-0000004"]

    # The 2-process checkpoint resumes in 1 process and continues the 1-process curve.
    resumed = _launch(trainer, tmp_path / "two", 6, processes=1, resume=True)
    reference = _launch(trainer, tmp_path / "one", 6, processes=1, resume=True)
    assert [r["step"] for r in resumed] == [r["step"] for r in reference]
    assert max(r["step"] for r in resumed) == 6
    _assert_same_curves(resumed, reference)
