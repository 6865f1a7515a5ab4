"""Micro end-to-end reward-model training: learns a clear preference, resumes exactly."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from redraft.config import LoggingSection, ModelSection, RewardModelSection
from redraft.data.preferences import PreferencePair
from redraft.models import save_model
from redraft.models.reward import build_reward_model
from redraft.training.logging import MetricsLog
from redraft.training.reward_model import train_reward_model


def preference_pairs(task, examples):
    """The true answer beats the answer with two junk digits appended."""
    return [PreferencePair(task.prompt(ex), ex.answer, ex.answer + "00", answer=ex.answer) for ex in examples]


def _train(tmp_path, sft_dir, tokenizer, task, head="classifier", **train):
    cfg = RewardModelSection.model_validate(
        {
            "head": head,
            "train": {
                "max_steps": 40,
                "batch_size": 32,
                "eval_every": 20,
                "save_every": 20,
                "log_every": 10,
                "optim": {"lr": 3e-3, "warmup_steps": 0},
                **train,
            },
        }
    )
    torch.manual_seed(0)  # the head's initial weights
    model = build_reward_model(tokenizer, ModelSection(path=str(sft_dir)), head=head)
    log = MetricsLog(tmp_path / "metrics.jsonl")
    return train_reward_model(
        model=model,
        tokenizer=tokenizer,
        train_pairs=preference_pairs(task, task.train[:300]),
        val_pairs=preference_pairs(task, task.val),
        cfg=cfg,
        out_dir=tmp_path / "rm",
        seed=0,
        log=log,
        logging=LoggingSection(progress=False),
    ), log.read("reward_model")


@pytest.fixture()
def sft_dir(tmp_path, micro_model, tokenizer):
    save_model(micro_model, tokenizer, tmp_path / "sft")
    return tmp_path / "sft"


@pytest.mark.parametrize("head", ["classifier", "likelihood"])
def test_learns_the_preference_and_saves_stats(tmp_path, sft_dir, tokenizer, micro_task, head):
    result, records = _train(tmp_path, sft_dir, tokenizer, micro_task, head=head)
    evals = [r for r in records if "val_accuracy" in r]
    assert [r["step"] for r in evals] == [20, 40]
    assert result["val_accuracy"] >= 0.95, evals
    # The kept model is the one with the best held-out accuracy, and the final summary re-measures it.
    assert result["monitor"] == "val_accuracy" and result["best_monitored"] == max(r["val_accuracy"] for r in evals)
    # The fresh head scores near 0 (loss ≈ ln 2); the kept model separates the pairs by a wide margin.
    assert result["val_loss"] < 0.2 and result["val_reward_margin"] > 2.0
    stats = json.loads((tmp_path / "rm" / "model" / "reward_stats.json").read_text())
    assert stats == result["reward_stats"] and stats["std"] > 0


def test_resume_gives_the_same_weights(tmp_path, sft_dir, tokenizer, micro_task):
    _train(tmp_path / "full", sft_dir, tokenizer, micro_task, max_steps=4, save_every=2, eval_every=2)
    _train(tmp_path / "cut", sft_dir, tokenizer, micro_task, max_steps=4, save_every=2, eval_every=2)
    shutil.rmtree(tmp_path / "cut" / "rm" / "checkpoints" / "step-0000004")
    shutil.rmtree(tmp_path / "cut" / "rm" / "model")
    cfg = RewardModelSection.model_validate(
        {
            "train": {
                "max_steps": 4,
                "batch_size": 32,
                "eval_every": 2,
                "save_every": 2,
                "optim": {"lr": 3e-3, "warmup_steps": 0},
            }
        }
    )
    torch.manual_seed(0)
    train_reward_model(
        model=build_reward_model(tokenizer, ModelSection(path=str(sft_dir))),
        tokenizer=tokenizer,
        train_pairs=preference_pairs(micro_task, micro_task.train[:300]),
        val_pairs=preference_pairs(micro_task, micro_task.val),
        cfg=cfg,
        out_dir=tmp_path / "cut" / "rm",
        seed=0,
        log=MetricsLog(tmp_path / "cut" / "metrics.jsonl"),
        logging=LoggingSection(progress=False),
        resume=True,
    )
    # The last checkpoints hold the final weights (model/ holds the best-validated ones).
    full = load_file(str(tmp_path / "full" / "rm" / "checkpoints" / "step-0000004" / "model.safetensors"))
    resumed = load_file(str(tmp_path / "cut" / "rm" / "checkpoints" / "step-0000004" / "model.safetensors"))
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], atol=0, rtol=0, msg=name)


@pytest.mark.parametrize("head", ["classifier", "likelihood"])
def test_lora_reward_model_learns_and_saves_the_adapter_alone(tmp_path, sft_dir, tokenizer, micro_task, head):
    from redraft.models.reward import load_reward_model

    lora = {"enabled": True, "r": 8, "target_modules": ["all-linear"]}
    result, _ = _train(tmp_path, sft_dir, tokenizer, micro_task, head=head, lora=lora, optim={"lr": 1e-2})
    assert result["val_accuracy"] >= 0.9
    kept, _ = load_reward_model(result["model_dir"])
    assert not any("lora" in name for name in kept.state_dict())
    assert (tmp_path / "rm" / "model" / "adapter" / "adapter_config.json").is_file()
