import subprocess
import sys

import pytest

from redraft.config import PipelineConfig, apply_override, load_config
from redraft.errors import ConfigError


def test_builtin_defaults_load_for_every_stage():
    for stage in ("run", "pretrain", "sft", "eval", "generate"):
        cfg = load_config(stage)
        assert cfg.run.seed == 0
    assert isinstance(load_config("run"), PipelineConfig)


def test_yaml_merges_over_defaults_and_set_overrides_win(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sft:\n  max_steps: 7\n  optim:\n    lr: 0.5\n")
    cfg = load_config("run", path, ["sft.optim.lr=0.25", "task.ops=['+', '*']"])
    assert cfg.sft.max_steps == 7
    assert cfg.sft.optim.lr == 0.25
    assert cfg.task.ops == ["+", "*"]
    assert cfg.pretrain.max_steps == load_config("run").pretrain.max_steps  # untouched default


def test_mixed_precision_no_reads_as_fp32_though_yaml_reads_a_bare_no_as_false(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rl:\n  mixed_precision: no\n")
    cfg = load_config("run", path, ["sft.mixed_precision=no", "score.rl.mixed_precision=auto"])
    assert (cfg.sft.mixed_precision, cfg.rl.mixed_precision, cfg.score.rl.mixed_precision) == ("no", "no", "auto")
    assert load_config("run").sft.mixed_precision == "no"
    with pytest.raises(ConfigError, match="mixed_precision"):
        load_config("run", None, ["sft.mixed_precision=fp8"])


def test_setting_one_key_keeps_the_rest_of_a_customised_default_section(tmp_path):
    # score.star and score.rl.optim default to values other than their classes' defaults; setting
    # one of their keys must not reset the others to the generic class defaults.
    defaults = load_config("score").score
    path = tmp_path / "c.yaml"
    path.write_text("score:\n  rl:\n    samples_per_prompt: 9\n")
    cfg = load_config("score", path, ["score.star.optim.lr=1e-4", "score.rl.optim.lr=1e-5"]).score
    assert cfg.star.optim.lr == 1e-4
    assert cfg.star.max_steps == defaults.star.max_steps == 100
    assert cfg.star.optim.warmup_steps == defaults.star.optim.warmup_steps
    assert cfg.rl.samples_per_prompt == 9
    assert (cfg.rl.algorithm, cfg.rl.save_every) == (defaults.rl.algorithm, defaults.rl.save_every)
    assert cfg.rl.optim.lr == 1e-5
    assert cfg.rl.optim.min_lr_ratio == defaults.rl.optim.min_lr_ratio == 1.0
    assert cfg.pair_sft.eval_accuracy_problems == 0
    # the main job's built-in YAML sets part of score.pair_sft; the rest keeps the section's defaults
    assert load_config("run").score.pair_sft.eval_accuracy_problems == 0


def test_unknown_key_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'sft\.optim\.lrr'"):
        load_config("run", None, ["sft.optim.lrr=1"])
    path = tmp_path / "c.yaml"
    path.write_text("pretrain:\n  max_stepz: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'pretrain\.max_stepz'"):
        load_config("run", path)


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError, match=r"'sft\.max_steps'.*'many'"):
        load_config("run", None, ["sft.max_steps=many"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config("run", tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config("run", bad)


def test_config_file_that_is_not_utf8_names_the_line(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"run:\n  name: caf\xe9\n")
    with pytest.raises(ConfigError, match=rf"{bad}:2: not valid UTF-8 \(byte 0xe9\)"):
        load_config("run", bad)


@pytest.mark.parametrize(
    "assignment", ["sft.optim.beta1=.nan", "sft.optim.beta2=1.0", "sft.optim.eps=-1", "sft.optim.eps=0"]
)
def test_optimizer_constants_are_validated(assignment):
    with pytest.raises(ConfigError, match=assignment.split("=")[0].removeprefix("sft.")):
        load_config("run", None, [assignment])


@pytest.mark.parametrize("assignment", ["task.reward=maths", "task.reward={math: 1, 'a b:c': 2}"])
def test_reward_names_are_checked_with_the_config(assignment):
    with pytest.raises(ConfigError, match="unknown reward"):
        load_config("run", None, [assignment])
    assert load_config("rl", None, ["task.reward={math: 1.0, 'my_rewards:brevity': 0.1}"]).task.reward == {
        "math": 1.0,
        "my_rewards:brevity": 0.1,
    }


def test_override_syntax():
    assert apply_override({}, "a.b=3") == {"a": {"b": 3}}
    with pytest.raises(ConfigError):
        apply_override({}, "novalue")


def test_cli_prints_one_line_error_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "redraft", "run", "--set", "sft.max_stepz=1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "unknown key 'sft.max_stepz'" in lines[0]
    missing = subprocess.run(
        [sys.executable, "-m", "redraft", "pretrain", "--config", "missing.yaml"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert missing.returncode == 2 and "config file not found: missing.yaml" in missing.stderr


def test_scale_rewards_takes_the_three_modes_and_the_former_bools(tmp_path):
    assert load_config("rl").rl.scale_rewards == "group"
    for given, mode in (("true", "group"), ("false", "none"), ("batch", "batch"), ("none", "none")):
        assert load_config("rl", None, [f"rl.scale_rewards={given}"]).rl.scale_rewards == mode
    path = tmp_path / "c.yaml"
    path.write_text("rl:\n  scale_rewards: false\n")  # a config written for the bool keeps working
    assert load_config("rl", path).rl.scale_rewards == "none"
    with pytest.raises(ConfigError, match=r"'rl\.scale_rewards'"):
        load_config("rl", None, ["rl.scale_rewards=global"])


def test_rl_options_name_the_literature_terms():
    from redraft.config import RLSection, ScoreSection

    fields = RLSection.model_fields
    assert "Dr. GRPO" in fields["loss_agg"].description and "dr_grpo" in fields["loss_agg"].description
    assert "TRL" in fields["scale_rewards"].description
    assert "k1" in fields["kl_estimator"].description and "RLOO" in fields["kl_estimator"].description
    assert "unbiased" in ScoreSection.model_fields["stage1_first_temperature"].description
