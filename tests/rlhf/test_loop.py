"""One micro RLHF round per method, end to end: collect -> reward model + PPO, or DPO -> evaluate."""

import json

import pytest
from sqlalchemy import func, select

from redraft.config import load_config
from redraft.data.preferences import read_pairs
from redraft.feedback.config import StoreSection
from redraft.feedback.store import Label, make_engine, make_sessionmaker
from redraft.models import save_model
from redraft.rlhf.config import RLHFConfig
from redraft.rlhf.loop import run_rlhf


def _config(tmp_path, model_dir, method, *extra):
    return load_config(
        RLHFConfig,
        None,
        [
            *extra,
            f"run.output_dir={tmp_path}",
            f"run.name={method}",
            f"model.path={model_dir}",
            "logging.progress=false",
            "task.train_size=600",
            "task.val_size=32",
            "task.test_size=64",
            "task.max_digits=2",
            f"rlhf.method={method}",
            "rlhf.simulated.prompts=64",
            "rlhf.simulated.val_prompts=16",
            "rlhf.reward_model.train.max_steps=6",
            "rlhf.reward_model.train.batch_size=16",
            "rlhf.reward_model.train.eval_every=3",
            "rlhf.ppo.iterations=2",
            "rlhf.ppo.prompts_per_iteration=8",
            "rlhf.ppo.eval_problems=8",
            "rlhf.dpo.train.max_steps=4",
            "rlhf.dpo.train.batch_size=16",
            "rlhf.dpo.train.eval_every=2",
            "rlhf.dpo.kl_prompts=8",
            "rlhf.dpo.eval_problems=8",
        ],
    )


@pytest.mark.parametrize("method", ["ppo", "dpo"])
def test_one_round_runs_and_reports(tmp_path, micro_model, tokenizer, method):
    save_model(micro_model, tokenizer, tmp_path / "sft")
    cfg = _config(tmp_path, tmp_path / "sft", method)
    summary = run_rlhf(cfg)
    run_dir = tmp_path / method
    round_result = summary["rounds"][0]
    assert round_result["method"] == method and round_result["train_pairs"] == len(
        read_pairs(run_dir / "round-1" / "pairs.jsonl")
    )
    evaluation = round_result["eval"]
    assert 0.0 <= evaluation["test_accuracy"] <= 1.0 and evaluation["test_problems"] == 64 and "kl" in evaluation
    assert summary["start"]["test_problems"] == 64 and "kl" not in summary["start"]
    if method == "ppo":
        assert "val_accuracy" in round_result["reward_model"]
        assert (run_dir / "round-1" / "reward_model" / "model" / "reward_stats.json").is_file()
        rl_records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rl_records if r["stage"] == "rl"] == [1, 2]
        watch = [r for r in rl_records if r["stage"] == "ppo_watch"]  # the checker's view of the PPO samples
        assert len(watch) >= 2 and all(0.0 <= r["checker_accuracy"] <= 1.0 for r in watch)
    assert json.loads((run_dir / "result.json").read_text())["rounds"][0]["policy_dir"] == round_result["policy_dir"]
    # A rerun finds every stage finished and returns the same summary without training again.
    assert run_rlhf(cfg)["rounds"][0]["eval"] == evaluation


def test_a_round_with_the_feedback_app_in_the_loop(tmp_path, micro_model, tokenizer):
    """sample -> queue in the feedback store -> simulated annotators label over HTTP -> export -> DPO -> evaluate."""
    save_model(micro_model, tokenizer, tmp_path / "sft")
    cfg = _config(tmp_path, tmp_path / "sft", "dpo", "rlhf.collect=app", "rlhf.app.annotators=4")
    summary = run_rlhf(cfg)
    round_dir = tmp_path / "dpo" / "round-1"
    engine = make_engine(StoreSection(url=f"sqlite:///{round_dir / 'feedback.db'}"))
    with make_sessionmaker(engine)() as session:
        labels = session.scalar(select(func.count()).select_from(Label))
    engine.dispose()
    assert labels == 64 + 16  # one ranking per training and per validation prompt
    pairs = read_pairs(round_dir / "pairs.jsonl")
    assert pairs and {p.source for p in pairs} == {"ranking"}
    assert summary["rounds"][0]["train_pairs"] == len(pairs) and "test_accuracy" in summary["rounds"][0]["eval"]


def test_the_reward_model_can_start_from_a_stronger_checkpoint(tmp_path, micro_model, tokenizer):
    from transformers import AutoConfig

    from redraft.config import ModelSection
    from redraft.models import build_model

    save_model(micro_model, tokenizer, tmp_path / "sft")
    save_model(build_model(ModelSection(preset="micro", layers=2), tokenizer), tokenizer, tmp_path / "judge")
    cfg = _config(tmp_path, tmp_path / "sft", "ppo", f"rlhf.reward_model.path={tmp_path / 'judge'}")
    round_result = run_rlhf(cfg)["rounds"][0]
    reward_model = AutoConfig.from_pretrained(round_result["reward_model"]["model_dir"])
    policy = AutoConfig.from_pretrained(round_result["policy_dir"])
    assert (reward_model.num_hidden_layers, policy.num_hidden_layers) == (2, micro_model.config.num_hidden_layers)


def test_model_dtype_reaches_the_reward_model_critic_and_policy(tmp_path, micro_model, tokenizer, monkeypatch):
    import torch
    from safetensors import safe_open

    from redraft.models import value

    critics = []
    load_critic = value.ValueModel.from_pretrained.__func__
    monkeypatch.setattr(
        value.ValueModel,
        "from_pretrained",
        classmethod(lambda cls, path, dtype=None: critics.append(load_critic(cls, path, dtype)) or critics[-1]),
    )
    save_model(micro_model, tokenizer, tmp_path / "sft")
    round_result = run_rlhf(_config(tmp_path, tmp_path / "sft", "ppo", "model.dtype=bf16"))["rounds"][0]

    def saved_dtypes(model_dir):
        with safe_open(f"{model_dir}/model.safetensors", "pt") as weights:
            return {weights.get_tensor(name).dtype for name in weights.keys()}

    assert saved_dtypes(round_result["reward_model"]["model_dir"]) == {torch.bfloat16}
    assert saved_dtypes(round_result["policy_dir"]) == {torch.bfloat16}
    assert {p.dtype for critic in critics for p in critic.parameters()} == {torch.bfloat16}
    assert 0.0 <= round_result["eval"]["test_accuracy"] <= 1.0
