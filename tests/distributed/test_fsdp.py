"""FSDP2 on the CPU: the micro model sharded over 2 gloo processes trains like one unsharded process.

accelerate (1.15) turns FSDP on only for accelerator devices, so the trainers' FSDP path
(configs/accelerate/fsdp.yaml) cannot run here; this runs torch's own ``fully_shard`` with the same
wrapping (every decoder layer, then the model) to check that redraft's models shard, train and
round-trip a sharded checkpoint.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from redraft.distributed import launch_argv

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("fsdp_worker.py")


def _run(out_dir: Path, processes: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = launch_argv([str(WORKER), str(out_dir), "3"], processes)
    done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    # Whether the report was written tells a crash in training from one at teardown.
    assert done.returncode == 0, f"report written: {(out_dir / 'report.json').exists()}\n{done.stderr[-3000:]}"
    return json.loads((out_dir / "report.json").read_text())


def test_fully_sharded_training_matches_one_process_and_checkpoints_round_trip(tmp_path):
    sharded = _run(tmp_path / "sharded", 2)
    single = _run(tmp_path / "single", 1)
    assert sharded["processes"] == 2
    assert sharded["first_parameter_rows_on_rank0"] * 2 == sharded["first_parameter_rows"]  # really sharded
    assert sharded["reloaded_equal"]  # torch.distributed.checkpoint save + load into a fresh sharded model
    torch.testing.assert_close(torch.tensor(sharded["losses"]), torch.tensor(single["losses"]), rtol=1e-5, atol=0)
    assert single["losses"][-1] < single["losses"][0]
    sharded_weights = load_file(tmp_path / "sharded" / "weights.safetensors")
    single_weights = load_file(tmp_path / "single" / "weights.safetensors")
    assert sharded_weights.keys() == single_weights.keys()
    for name, weight in single_weights.items():
        torch.testing.assert_close(sharded_weights[name], weight, rtol=1e-4, atol=1e-5)
