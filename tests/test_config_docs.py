"""Every config key explains itself: descriptions on every field, `config show --explain`, and a
docs/config-reference.md that matches the code."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from redraft.cli import CONFIGS, app, config_reference, load_named_config
from redraft.config_docs import explain_config, undescribed_fields, yaml_value

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "config-reference.md"
REGENERATE = "regenerate it: redraft config reference --output docs/config-reference.md"


def test_every_key_of_every_command_has_a_description():
    missing = sorted({key for name in CONFIGS for key in undescribed_fields(type(load_named_config(name)))})
    assert missing == [], "add Field(description=...) to: " + ", ".join(missing)


def test_docs_config_reference_matches_the_code():
    assert REFERENCE.read_text(encoding="utf-8") == config_reference(), REGENERATE


def test_reference_lists_every_command_and_key():
    text = config_reference()
    for command, _ in CONFIGS.values():
        assert f"`{command}`" in text
    for key in ("`rl.kl_coef`", "`score.rl.optim.lr`", "`rlhf.ppo.kl_estimator`", "`queue.labels_per_item`"):
        assert key in text
    # the main job's default is run.yaml's, not the class's
    assert "| `sft.max_steps` | `600` |" in text


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_explained_config_loads_back_to_the_same_values(name):
    cfg = load_named_config(name)
    assert yaml.safe_load(explain_config(cfg)) == cfg.model_dump(mode="json")


def test_yaml_values_round_trip():
    for value in ["main", "\nCheck: {prompt}", "{question}=", "a: b", None, True, 1e-8, ["+"], [], {"math": 1.0}]:
        assert yaml.safe_load(f"key: {yaml_value(value)}") == {"key": value}


def test_config_show_explain_and_plain(tmp_path):
    runner = CliRunner()
    explained = runner.invoke(app, ["config", "show", "rl", "--explain", "--set", "rl.kl_coef=0.05"])
    assert explained.exit_code == 0, explained.output
    assert "# β of the KL(π ‖ π_ref) penalty" in explained.output
    assert "  kl_coef: 0.05" in explained.output
    plain = runner.invoke(app, ["config", "show", "rl", "--set", "rl.kl_coef=0.05"])
    assert plain.exit_code == 0 and "#" not in plain.output
    assert yaml.safe_load(plain.output) == yaml.safe_load(explained.output)
    for name in ("rm", "dpo", "rlhf", "feedback"):  # the configs of the rlhf and feedback commands too
        assert runner.invoke(app, ["config", "show", name]).exit_code == 0
    out = tmp_path / "reference.md"
    written = runner.invoke(app, ["config", "reference", "--output", str(out)])
    assert written.exit_code == 0 and out.read_text(encoding="utf-8") == config_reference()
