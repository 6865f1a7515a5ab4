"""The seed summary of `redraft score` runs (`redraft score-seeds`)."""

import json

import pytest
from typer.testing import CliRunner

from redraft.cli import app
from redraft.errors import RedraftError
from redraft.score import seeds_table


def _evaluation(t1: float, t2: float, i2c: float, c2i: float, delta_ci: float = 0.02) -> dict:
    metrics = {
        "acc@t1": t1,
        "acc@t2": t2,
        "delta": t2 - t1,
        "delta_i2c": i2c,
        "delta_c2i": c2i,
        "changed": 0.1,
    }
    ci95 = {name: 0.01 for name in metrics} | {"delta": delta_ci}
    result = {
        "num_problems": 1000,
        "attempts": 2,
        "first_temperature": 0.0,
        "metrics": metrics,
        "ci95": ci95,
        "truncated_fraction": [0.0, 0.0],
    }
    return {"test": result}


def _summary(score_t2: float) -> dict:
    return {
        "evaluations": {
            "prompting": _evaluation(0.80, 0.10, 0.0, 0.70),
            "multiturn_rl": _evaluation(0.78, 0.81, 0.04, 0.01),
            "control": _evaluation(0.82, 0.0, 0.0, 0.82),
            "score": _evaluation(0.80, score_t2, score_t2 - 0.80 + 0.01, 0.01),
        }
    }


def test_seeds_table_reports_mean_sd_and_each_runs_delta():
    table = seeds_table({"s0": _summary(0.86), "s1": _summary(0.88)})
    row = next(line for line in table.splitlines() if line.startswith("| score |"))
    # Δ per seed +6 and +8: mean +7.0, sample sd 1.4; Acc@t2 86 and 88: 87.0 ± 1.4
    assert "| 80.0 ± 0.0 | 87.0 ± 1.4 | +7.0 ± 1.4 |" in row
    assert row.endswith("| +6.0 ± 2.0, +8.0 ± 2.0 |")


def test_seeds_table_shows_only_attempt_1_of_the_single_attempt_control():
    table = seeds_table({"s0": _summary(0.86), "s1": _summary(0.88)})
    row = next(line for line in table.splitlines() if line.startswith("| control |"))
    assert row == "| control | 82.0 ± 0.0 | – | – | – | – | – | – |"


def test_seeds_table_reports_measurements_only():
    # the project's learning-target checks live in bench/main_job_seeds.py (tests/test_bench_targets.py)
    table = seeds_table({"s0": _summary(0.86), "s1": _summary(0.88)})
    assert "Learning target" not in table and "- met:" not in table and "NOT met" not in table
    assert table.rstrip().splitlines()[-1].startswith("| score |")


def test_seeds_table_needs_a_method_common_to_all_runs():
    with pytest.raises(RedraftError, match="no method"):
        seeds_table({"s0": _summary(0.86), "s1": {"evaluations": {}}}, key="test")


def test_score_seeds_command_reads_runs_and_reports_a_missing_one(tmp_path):
    for name, t2 in (("a", 0.86), ("b", 0.88)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "score.json").write_text(json.dumps(_summary(t2)))
    out = tmp_path / "seeds.md"
    result = CliRunner().invoke(
        app,
        ["score-seeds", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "| score |" in result.output and out.read_text() in result.output
    missing = CliRunner().invoke(app, ["score-seeds", str(tmp_path / "a"), str(tmp_path / "c")])
    assert missing.exit_code != 0


def test_star_samples_with_the_last_round_but_fine_tunes_the_starting_model(tmp_path, monkeypatch):
    # STaR's Algorithm 1: round n samples with model n-1 and trains the *starting* model on what it kept.
    from redraft import score
    from redraft.config import load_config
    from redraft.training.logging import MetricsLog

    sampled_with, trained_from = [], []

    def fake_star_episodes(model, *args):
        sampled_with.append(model)
        return ["episode"] * 4

    def fake_sft_stage(name, model_path, *args):
        trained_from.append(model_path)
        return {"model_dir": f"{tmp_path}/{name}"}

    class FakeModel(str):  # a model that is just its path; placing it on a device keeps it
        def to(self, device):
            return self

    monkeypatch.setattr(score, "load_model", lambda path, dtype=None: FakeModel(path))
    monkeypatch.setattr(score, "star_episodes", fake_star_episodes)
    monkeypatch.setattr(score, "episodes_to_sft", lambda *args: None)
    monkeypatch.setattr(score, "_sft_stage", fake_sft_stage)
    cfg = load_config("score", None, ["score.star_iterations=3", "score.star.batch_size=2"])
    tokenizer = type("Tokenizer", (), {"pad_token_id": 0})()
    task = type("Task", (), {"train": list(range(10))})()
    result = score._star(cfg, task, tokenizer, "pair_sft", tmp_path, MetricsLog(tmp_path / "m.jsonl"), False)
    assert trained_from == ["pair_sft"] * 3
    assert sampled_with == ["pair_sft", f"{tmp_path}/star_1", f"{tmp_path}/star_2"]
    assert result["model_dir"] == f"{tmp_path}/star_3"
    assert result["successful_corrections"] == [4, 4, 4]


def test_single_attempt_control_continues_a_started_run_for_the_rest_of_scores_wall_clock(tmp_path, monkeypatch):
    from redraft import score

    calls = []

    def fake_rl(**kwargs):
        calls.append(kwargs)
        return {"model_dir": f"{tmp_path}/control/model", "iterations": 7, "seconds": kwargs["max_seconds"] + 0.5}

    monkeypatch.setattr(score, "_rl", fake_rl)
    started = score.ControlStart("runs/x/rl/model", 30.0)
    result = score._control({}, tmp_path / "control", started, 100.0, 2000)
    assert [(c["model_path"], c["max_seconds"], c["multi_turn"]) for c in calls] == [("runs/x/rl/model", 70.0, False)]
    assert result["starts_from"] == "runs/x/rl/model" and result["single_attempt_seconds"] == 100.5
    # A start that already had SCoRe's wall-clock is the control as it is: nothing more is trained.
    done = score._control({}, tmp_path / "control", score.ControlStart("runs/x/rl/model", 120.0), 100.0, 2000)
    assert len(calls) == 1 and done["model_dir"] == "runs/x/rl/model" and done["single_attempt_seconds"] == 120.0
