import fcntl
import json
import os
import time

import pytest

from redraft.config import config_changes, load_config
from redraft.errors import RedraftError
from redraft.run_folder import start_job_clock, start_run_dir, stop_job_clock


def _sft(*overrides):
    return load_config("sft", overrides=list(overrides))


def test_config_changes_name_each_dotted_key():
    old = {"train": {"optim": {"lr": 0.001, "eps": 1e-8}, "max_steps": 10}, "run": {"seed": 0}}
    new = {"train": {"optim": {"lr": 0.002, "eps": 1e-8}, "max_steps": 20}, "run": {"seed": 0}}
    assert config_changes(old, new) == ["train.max_steps: 10 -> 20", "train.optim.lr: 0.001 -> 0.002"]
    assert config_changes(old, old) == []


def test_resume_refuses_a_changed_config_and_accepts_the_same_one(tmp_path):
    run = tmp_path / "r"
    start_run_dir(run, _sft(), resume=False, overwrite=False)
    (run / "metrics.jsonl").write_text("")  # the run started
    with pytest.raises(
        RedraftError, match=r"train.optim.lr: 0.001 -> 0.002.*--resume continues a run as it was started"
    ):
        start_run_dir(run, _sft("train.optim.lr=0.002"), resume=True, overwrite=False)
    with pytest.raises(RedraftError, match=r"train.max_steps"):
        start_run_dir(run, _sft("train.max_steps=9999"), resume=True, overwrite=False)
    start_run_dir(run, _sft(), resume=True, overwrite=False)
    start_run_dir(run, _sft("train.optim.lr=0.002"), resume=False, overwrite=True)
    assert "lr: 0.002" in (run / "config.yaml").read_text()


def test_a_start_that_failed_before_any_output_does_not_block_the_corrected_command(tmp_path):
    run = tmp_path / "r"
    start_run_dir(run, _sft("train.max_steps=3"), resume=False, overwrite=False)  # then the stage failed
    start_run_dir(run, _sft(), resume=False, overwrite=False)
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(RedraftError, match="already exists"):
        start_run_dir(run, _sft(), resume=False, overwrite=False)


def test_run_folder_that_is_a_file_or_unwritable_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RedraftError, match="is a file"):
        start_run_dir(tmp_path / "file", _sft(), resume=False, overwrite=False)
    with pytest.raises(RedraftError, match="cannot write the run folder"):
        start_run_dir(tmp_path / "file" / "r", _sft(), resume=False, overwrite=False)


def test_a_run_folder_another_process_holds_is_refused(tmp_path):
    run = tmp_path / "busy"
    with (tmp_path / ".busy.lock").open("a") as other:  # another process's lock (flock is per open file)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RedraftError, match="in use by another redraft process"):
            start_run_dir(run, _sft(), resume=True, overwrite=False)


def test_a_killed_segment_counts_up_to_the_runs_last_write(tmp_path):
    run = tmp_path / "r"
    run.mkdir()
    (run / "timing.json").write_text(json.dumps({"main_job_seconds": 50.0, "segment_started_at": time.time() - 100}))
    last_write = run / "metrics.jsonl"
    last_write.write_text("{}\n")
    os.utime(last_write, (time.time() - 40, time.time() - 40))  # the kill came 60 s into the segment
    os.utime(run / "timing.json", (time.time() - 100, time.time() - 100))
    start_job_clock(run)
    timings = stop_job_clock(run)
    assert timings["main_job_seconds"] == pytest.approx(50 + 60, abs=1.0)
    assert json.loads((run / "timing.json").read_text()) == timings
