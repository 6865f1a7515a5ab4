"""Micro end-to-end RL runs: every algorithm raises the reward of a simple verifiable task."""

import pytest
import torch
from safetensors.torch import load_file

from redraft.config import LoggingSection, RLSection
from redraft.envs import SingleTurnEnv
from redraft.errors import TrainingError
from redraft.models import save_model
from redraft.training import rl as rl_module
from redraft.training import rl_metrics, rl_update
from redraft.training.logging import MetricsLog


def digit_reward(prompts, completions, **fields):
    """1 when the reply starts with a digit: rare for a random model (~4%), easy to learn."""
    return [1.0 if c[:1].isdigit() else 0.0 for c in completions]


# 12 iterations in which a micro model learns digit_reward (at lr 1e-2) in a few seconds.
MICRO_RL = {
    "iterations": 12,
    "prompts_per_iteration": 16,
    "samples_per_prompt": 8,
    "max_new_tokens": 2,
    "minibatch_size": 64,
    "eval_problems": 0,
    "save_every": 4,
    "optim": {"lr": 1e-2, "warmup_steps": 0},
    "critic_lr": 1e-2,
}


def _run(tmp_path, model, tokenizer, task, algorithm, **overrides):
    save_model(model, tokenizer, tmp_path / "start")
    cfg = RLSection.model_validate({**MICRO_RL, "algorithm": algorithm, **overrides})
    log = MetricsLog(tmp_path / "metrics.jsonl")
    result = rl_module.train_rl(
        model_path=tmp_path / "start",
        tokenizer=tokenizer,
        task=task,
        cfg=cfg,
        out_dir=tmp_path / "rl",
        seed=0,
        log=log,
        logging=LoggingSection(progress=False),
        env_factory=lambda: SingleTurnEnv(task, digit_reward),
    )
    return result, log.read("rl")


@pytest.mark.parametrize(
    "algorithm, extra",
    [
        ("grpo", {"kl_coef": 0.01}),
        ("rloo", {"kl_coef": 0.01}),
        ("reinforce_pp", {"kl_coef": 0.01}),
        ("ppo", {"kl_coef": 0.01, "epochs": 2}),
    ],
)
def test_reward_goes_up(tmp_path, micro_model, tokenizer, micro_task, algorithm, extra):
    result, records = _run(tmp_path, micro_model, tokenizer, micro_task, algorithm, **extra)
    rewards = [r["reward"] for r in records]
    assert len(rewards) == 12
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.2, rewards
    assert all(k in records[-1] for k in ("kl", "entropy", "clipfrac", "response_length", "truncated_fraction"))
    assert all(0 <= r["frac_reward_zero_std"] <= 1 for r in records)
    if algorithm == "ppo":
        assert "value_error" in records[-1] and (tmp_path / "rl" / "critic" / "value_head.safetensors").is_file()
    assert (tmp_path / "rl" / "model" / "model.safetensors").is_file()


def test_without_a_kl_term_the_reference_is_not_scored_and_training_is_unchanged(
    tmp_path, micro_model, tokenizer, micro_task, monkeypatch
):
    loaded = []
    real_load = rl_module.load_model
    monkeypatch.setattr(rl_module, "load_model", lambda path, *dtype: loaded.append(path) or real_load(path, *dtype))
    _, plain = _run(tmp_path / "plain", micro_model, tokenizer, micro_task, "grpo", iterations=3)
    assert len(loaded) == 1 and "kl" not in plain[-1] and "approx_kl" in plain[-1]  # the policy only
    _, logged = _run(
        tmp_path / "logged", micro_model, tokenizer, micro_task, "grpo", iterations=3, log_reference_kl=True
    )
    assert len(loaded) == 3 and logged[-1]["kl"] > 0
    for name, weight in load_file(str(tmp_path / "plain" / "rl" / "model" / "model.safetensors")).items():
        assert torch.equal(weight, load_file(str(tmp_path / "logged" / "rl" / "model" / "model.safetensors"))[name]), (
            name
        )


@pytest.mark.parametrize(
    "algorithm, extra",
    [
        ("grpo", {"kl_coef": 0.01, "loss_agg": "token_mean"}),
        ("grpo", {"loss_agg": "seq_mean_token_mean"}),
        ("rloo", {"loss_agg": "seq_mean_token_sum_norm"}),
        ("ppo", {"kl_coef": 0.01, "epochs": 2}),
    ],
)
def test_micro_batches_accumulate_the_same_update(
    tmp_path, micro_model, tokenizer, micro_task, algorithm, extra, monkeypatch
):
    # 64-row minibatches in one pass, or as chunks of 24, 24 and 16 rows whose gradients add up to the same.
    runs, rows = {}, []
    real_logprobs = rl_module.sequence_logprobs
    for module in (rl_module, rl_update):  # the scoring passes and the update's
        monkeypatch.setattr(
            module, "sequence_logprobs", lambda model, ids, *a: rows.append(len(ids)) or real_logprobs(model, ids, *a)
        )
    for name, micro in (("whole", None), ("chunked", 24)):
        rows.clear()
        _, records = _run(tmp_path / name, micro_model, tokenizer, micro_task, algorithm, iterations=3,
                          micro_batch_size=micro, **extra)  # fmt: skip
        runs[name] = records, load_file(str(tmp_path / name / "rl" / "model" / "model.safetensors"))
        # chunked, no forward pass (update, reference, critic) takes more than 24 rows; else minibatches in one pass
        assert (max(rows) <= 24) if micro else (max(rows) > 24), rows
    (whole, whole_weights), (chunked, chunked_weights) = runs["whole"], runs["chunked"]
    for name, weight in whole_weights.items():
        torch.testing.assert_close(chunked_weights[name], weight, rtol=1e-4, atol=1e-5, msg=name)
    for key in ("reward", "policy_loss", "entropy", "clipfrac", "grad_norm") + (("value_loss",) * (algorithm == "ppo")):
        assert [r[key] for r in chunked] == pytest.approx([r[key] for r in whole], rel=1e-3, abs=1e-5), key


@pytest.mark.parametrize("algorithm, extra", [("grpo", {}), ("rloo", {"loss_agg": "seq_mean_token_mean"})])
def test_rows_without_gradient_are_left_out_of_the_update(
    tmp_path, micro_model, tokenizer, micro_task, algorithm, extra, monkeypatch
):
    # Groups whose samples all score the same have advantage 0 and, with no KL term, a zero gradient: training
    # on the other rows only is the same update for less work.
    runs, rows = {}, {}
    real_logprobs = rl_update.sequence_logprobs
    real_selection = rl_update._rows_with_gradient
    for name in ("every row", "rows with gradient"):
        rows[name] = []
        monkeypatch.setattr(
            rl_update,
            "sequence_logprobs",
            lambda model, ids, *a, seen=rows[name]: seen.append(len(ids)) or real_logprobs(model, ids, *a),
        )
        if name == "every row":
            monkeypatch.setattr(rl_update, "_rows_with_gradient", lambda *a: real_selection(*a) | True)
        else:
            monkeypatch.setattr(rl_update, "_rows_with_gradient", real_selection)
        _, records = _run(tmp_path / name, micro_model, tokenizer, micro_task, algorithm, iterations=3, **extra)
        runs[name] = records, load_file(str(tmp_path / name / "rl" / "model" / "model.safetensors"))
    (full, full_weights), (lean, lean_weights) = runs["every row"], runs["rows with gradient"]
    assert sum(rows["rows with gradient"]) < sum(rows["every row"]) == 3 * 128, rows
    for name, weight in full_weights.items():
        torch.testing.assert_close(lean_weights[name], weight, rtol=1e-4, atol=1e-5, msg=name)
    for key in ("reward", "frac_reward_zero_std", "policy_loss", "grad_norm"):
        assert [r[key] for r in lean] == pytest.approx([r[key] for r in full], rel=1e-3, abs=1e-6), key


def test_a_kl_term_keeps_every_row_in_the_update(tmp_path, micro_model, tokenizer, micro_task, monkeypatch):
    rows = []
    real_logprobs = rl_update.sequence_logprobs
    monkeypatch.setattr(
        rl_update, "sequence_logprobs", lambda model, ids, *a: rows.append(len(ids)) or real_logprobs(model, ids, *a)
    )
    _, records = _run(tmp_path, micro_model, tokenizer, micro_task, "grpo", iterations=2, kl_coef=0.01)
    assert any(r["frac_reward_zero_std"] > 0 for r in records) and sum(rows) == 2 * 128


def test_adaptive_kl_moves_the_coefficient(tmp_path, micro_model, tokenizer, micro_task):
    _, records = _run(
        tmp_path,
        micro_model,
        tokenizer,
        micro_task,
        "reinforce_pp",
        iterations=4,
        kl_coef=0.1,
        adaptive_kl=True,
        kl_target=1e-6,
        kl_horizon=100,
    )
    coefs = [r["kl_coef"] for r in records]
    assert coefs[-1] > coefs[0]  # KL above target: the controller raises the coefficient


def test_resume_replays_the_same_iterations(tmp_path, micro_model, tokenizer, micro_task):
    full, _ = _run(tmp_path / "full", micro_model, tokenizer, micro_task, "grpo", iterations=6, save_every=3)
    reference = load_file(str(tmp_path / "full" / "rl" / "model" / "model.safetensors"))
    # Interrupted run: keep only the iteration-3 checkpoint, then resume.
    _run(tmp_path / "cut", micro_model, tokenizer, micro_task, "grpo", iterations=6, save_every=3)
    import shutil

    shutil.rmtree(tmp_path / "cut" / "rl" / "checkpoints" / "step-0000006")
    shutil.rmtree(tmp_path / "cut" / "rl" / "model")
    cfg = RLSection.model_validate(
        {
            "algorithm": "grpo",
            "iterations": 6,
            "prompts_per_iteration": 16,
            "samples_per_prompt": 8,
            "max_new_tokens": 2,
            "minibatch_size": 64,
            "eval_problems": 0,
            "save_every": 3,
            "optim": {"lr": 3e-3, "warmup_steps": 0},
        }
    )
    rl_module.train_rl(
        model_path=tmp_path / "cut" / "start",
        tokenizer=tokenizer,
        task=micro_task,
        cfg=cfg,
        out_dir=tmp_path / "cut" / "rl",
        seed=0,
        log=MetricsLog(tmp_path / "cut" / "metrics.jsonl"),
        logging=LoggingSection(progress=False),
        resume=True,
        env_factory=lambda: SingleTurnEnv(micro_task, digit_reward),
    )
    resumed = load_file(str(tmp_path / "cut" / "rl" / "model" / "model.safetensors"))
    for name in reference:
        torch.testing.assert_close(resumed[name], reference[name], atol=0, rtol=0)


def test_non_finite_loss_stops_with_the_last_checkpoint_named(
    tmp_path, micro_model, tokenizer, micro_task, monkeypatch
):
    real = rl_update.ppo_policy_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss, stats = real(*args, **kwargs)
        # two minibatches per iteration: call 5 is the first update of iteration 3
        return (loss * float("nan"), stats) if calls["n"] == 5 else (loss, stats)

    monkeypatch.setattr(rl_update, "ppo_policy_loss", poisoned)
    with pytest.raises(TrainingError, match=r"policy loss is nan at iteration 3.*step-0000002"):
        _run(tmp_path, micro_model, tokenizer, micro_task, "grpo", iterations=5, save_every=2)


def test_rewards_that_never_fire_are_reported(tmp_path, micro_model, tokenizer, micro_task, capsys, monkeypatch):
    monkeypatch.setattr(rl_metrics, "ZERO_REWARD_WARNING_ITERATIONS", 2)
    save_model(micro_model, tokenizer, tmp_path / "start")
    cfg = RLSection.model_validate({"iterations": 3, "prompts_per_iteration": 4, "samples_per_prompt": 2,
                                    "max_new_tokens": 2, "eval_problems": 0, "save_every": 10})  # fmt: skip
    rl_module.train_rl(
        model_path=tmp_path / "start",
        tokenizer=tokenizer,
        task=micro_task,
        cfg=cfg,
        out_dir=tmp_path / "rl",
        seed=0,
        log=MetricsLog(tmp_path / "metrics.jsonl"),
        logging=LoggingSection(progress=False),
        env_factory=lambda: SingleTurnEnv(micro_task, lambda prompts, completions, **fields: [0.0] * len(completions)),
    )
    assert capsys.readouterr().out.count("every reward was 0 for 2 iterations in a row") == 1


def test_lora_policy_learns_and_saves_merged_weights_and_the_adapter_alone(
    tmp_path, micro_model, tokenizer, micro_task
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    # A fresh micro model's logits span too little for adapters alone to make digits likely (its final norm and
    # tied embeddings are frozen under LoRA); a wider norm gives it the range a trained model has.
    with torch.no_grad():
        micro_model.model.norm.weight.mul_(4)
    before = {name: p.detach().clone() for name, p in micro_model.named_parameters()}
    lora = {"enabled": True, "r": 4, "target_modules": ["all-linear"]}
    _, records = _run(tmp_path, micro_model, tokenizer, micro_task, "grpo", lora=lora, optim={"lr": 3e-2})
    rewards = [r["reward"] for r in records]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.2, rewards
    exported = tmp_path / "rl" / "model"
    merged = AutoModelForCausalLM.from_pretrained(str(exported))  # plain HF weights, adapters merged
    assert not any("lora" in name for name in merged.state_dict())
    assert torch.equal(merged.model.embed_tokens.weight, before["model.embed_tokens.weight"])  # only adapters train
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(str(tmp_path / "start")), exported / "adapter"
    )
    ids = torch.tensor([tokenizer("12+7=")["input_ids"]])
    torch.testing.assert_close(adapted(ids).logits, merged(ids).logits, rtol=1e-4, atol=1e-4)


def test_bf16_mixed_precision_samples_scores_and_trains_in_bf16_and_saves_fp32_weights(
    tmp_path, micro_model, tokenizer, micro_task, monkeypatch
):
    seen = {"rollouts under autocast": set(), "lm head outputs": set()}
    real_load, real_episodes = rl_module.load_model, rl_module.run_episodes

    def load(path, *dtype):
        model = real_load(path, *dtype)
        model.lm_head.register_forward_hook(lambda _m, _in, out: seen["lm head outputs"].add(out.dtype))
        return model

    def episodes(*args, **kwargs):
        seen["rollouts under autocast"].add(torch.is_autocast_enabled("cpu"))
        return real_episodes(*args, **kwargs)

    monkeypatch.setattr(rl_module, "load_model", load)
    monkeypatch.setattr(rl_module, "run_episodes", episodes)
    _, records = _run(tmp_path, micro_model, tokenizer, micro_task, "grpo", kl_coef=0.01, mixed_precision="bf16")
    # the reference's and the update's forwards alike, and every rollout
    assert seen == {"rollouts under autocast": {True}, "lm head outputs": {torch.bfloat16}}
    rewards = [r["reward"] for r in records]
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.2, rewards
    saved = load_file(tmp_path / "rl" / "model" / "model.safetensors")
    assert {tensor.dtype for tensor in saved.values()} == {torch.float32}
