"""Trainers under ``accelerate launch`` with 2 CPU processes (gloo) against the same run in 1 process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from redraft.algorithms import group_advantages
from redraft.distributed import rank_share, require_divisible
from redraft.errors import ConfigError

SMOKE_RUN = "redraft.distributed.smoke"
# Two ranks sum their halves of the batch in a different order than one process does: float32
# rounding only, which the Adam updates carry along a few steps.
LOSS_RTOL = 1e-4


def _launch(kind: str, out_dir: Path, steps: int, processes: int, resume: bool = False) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    args = [kind, str(out_dir), str(steps)] + (["--resume"] if resume else [])
    if processes == 1:
        command = [sys.executable, "-m", SMOKE_RUN, *args]
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        # accelerate's own launcher needs MPI for several CPU processes; torchrun + ACCELERATE_USE_CPU
        # gives accelerate's MULTI_CPU (gloo) mode.
        env["ACCELERATE_USE_CPU"] = "true"
        command = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--master_port", str(port), "-m", SMOKE_RUN, *args,
        ]  # fmt: skip
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


def test_uneven_split_is_a_clear_error():
    with pytest.raises(ConfigError, match="multiple of 2"):
        require_divisible("rl.prompts_per_iteration", 7, 2)


@pytest.mark.slow
def test_lm_two_processes_match_one_and_resume_with_one(tmp_path):
    one = _launch("lm", tmp_path / "one", 4, processes=1)
    two = _launch("lm", tmp_path / "two", 4, processes=2)
    for key in ("loss", "val_loss", "grad_norm"):
        steps_one, values_one = zip(*_curve(one, key))
        steps_two, values_two = zip(*_curve(two, key))
        assert steps_one == steps_two  # written once per step, by rank 0 only
        torch.testing.assert_close(torch.tensor(values_two), torch.tensor(values_one), rtol=LOSS_RTOL, atol=0)
    assert sorted(p.name for p in (tmp_path / "two" / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]

    # The 2-process checkpoint resumes in 1 process and continues the 1-process curve.
    resumed = _launch("lm", tmp_path / "two", 6, processes=1, resume=True)
    reference = _launch("lm", tmp_path / "one", 6, processes=1, resume=True)
    steps_resumed, losses_resumed = zip(*_curve(resumed, "loss"))
    steps_reference, losses_reference = zip(*_curve(reference, "loss"))
    assert steps_resumed == steps_reference == tuple(range(1, 7))
    torch.testing.assert_close(torch.tensor(losses_resumed), torch.tensor(losses_reference), rtol=LOSS_RTOL, atol=0)


@pytest.mark.slow
def test_rl_two_processes_log_global_metrics_once_and_resume_with_one(tmp_path):
    records = _launch("rl", tmp_path, 2, processes=2)
    assert [r["step"] for r in records] == [1, 2]
    assert all({"reward", "kl", "policy_loss", "entropy", "grad_norm"} <= set(r) for r in records)
    assert (tmp_path / "rl" / "checkpoints" / "step-0000002" / "trainer_state.json").is_file()
    resumed = _launch("rl", tmp_path, 3, processes=1, resume=True)
    assert [r["step"] for r in resumed] == [1, 2, 3]
    assert (tmp_path / "rl" / "model" / "model.safetensors").is_file()
