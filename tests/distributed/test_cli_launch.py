"""The `redraft run` main job (micro config) under torchrun with 2 CPU processes against 1 process."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from redraft.distributed import launch_argv
from tests.test_pipeline import MICRO

pytestmark = pytest.mark.slow

# Stages whose curves must agree, and the numbers compared (see test_data_parallel for why they agree).
CURVES = {"pretrain": "loss", "sft": "loss", "rl": "reward", "pair_sft": "loss", "score_stage1": "reward_t2",
          "score_stage2": "reward_t2"}  # fmt: skip


def _main_job(root: Path, processes: int) -> Path:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_USE_CPU")}
    env["OMP_NUM_THREADS"] = "1"
    # No ACCELERATE_USE_CPU: several processes on a machine without a GPU must use gloo by themselves.
    command = launch_argv(["-m", "redraft", "run", "--name", "micro", *MICRO], processes)
    root.mkdir(parents=True)
    done = subprocess.run(command, check=False, cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("done: report at") == 1  # the main process alone speaks
    return root / "runs" / "micro"


def test_main_job_under_two_processes_matches_one_process(tmp_path):
    two = _main_job(tmp_path / "two", 2)
    one = _main_job(tmp_path / "one", 1)
    records = {
        run: [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (one, two)
    }
    # Every record written once, by rank 0 (the single-attempt control and the equal-time SFT control
    # stop on a wall-clock budget, so their step counts vary).
    timed = ("control", "sft_same_time")
    steps = [Counter((r["stage"], r["step"]) for r in records[run] if r["stage"] not in timed) for run in (one, two)]
    assert steps[0] == steps[1]
    for stage, key in CURVES.items():
        curves = [[r[key] for r in records[run] if r["stage"] == stage and key in r] for run in (one, two)]
        assert curves[0] and curves[0] == pytest.approx(curves[1], rel=1e-3, abs=1e-5), stage
    for stage in ("sft", "rl"):
        results = [json.loads((run / "eval" / stage / "eval.json").read_text()) for run in (one, two)]
        assert results[0]["greedy_accuracy"] == results[1]["greedy_accuracy"]
    assert (two / "report.md").is_file() and (two / "score" / "score.json").is_file()
