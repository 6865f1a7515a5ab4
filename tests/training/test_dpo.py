"""Micro end-to-end DPO: the policy moves toward the chosen completions, measured against its start."""

import pytest

from redraft.config import DPOSection, LoggingSection
from redraft.data.preferences import PreferencePair
from redraft.models import load_model, save_model
from redraft.training.dpo import completion_lengths, sampled_kl, train_dpo
from redraft.training.logging import MetricsLog
from redraft.training.pairwise import pair_batch, pair_data


def preference_pairs(task, examples):
    return [PreferencePair(task.prompt(ex), ex.answer, ex.answer + "00", answer=ex.answer) for ex in examples]


@pytest.fixture()
def sft_dir(tmp_path, micro_model, tokenizer):
    save_model(micro_model, tokenizer, tmp_path / "sft")
    return tmp_path / "sft"


def test_dpo_learns_the_preference_and_logs_kl(tmp_path, sft_dir, tokenizer, micro_task):
    cfg = DPOSection.model_validate(
        {
            "beta": 0.1,
            "kl_prompts": 16,
            "eval_problems": 16,
            "max_new_tokens": 4,
            "train": {
                "max_steps": 30,
                "batch_size": 32,
                "eval_every": 15,
                "save_every": 15,
                "log_every": 5,
                "optim": {"lr": 3e-3, "warmup_steps": 0},
            },
        }
    )
    log = MetricsLog(tmp_path / "metrics.jsonl")
    result = train_dpo(
        model_path=sft_dir,
        tokenizer=tokenizer,
        train_pairs=preference_pairs(micro_task, micro_task.train[:300]),
        val_pairs=preference_pairs(micro_task, micro_task.val),
        cfg=cfg,
        out_dir=tmp_path / "dpo",
        seed=0,
        log=log,
        logging=LoggingSection(progress=False),
        task=micro_task,
    )
    records = log.read("dpo")
    evals = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in evals] == [15, 30]
    assert all(
        k in evals[-1] for k in ("val_reward_accuracy", "val_reward_margin", "val_accuracy", "val_kl", "val_kl_k3")
    )
    assert evals[-1]["val_reward_accuracy"] >= 0.9 and evals[-1]["val_loss"] < 0.5  # ln 2 = 0.69 at the start
    assert evals[-1]["val_kl"] > 0.0
    assert records[0]["reward_margin"] < evals[-1]["val_reward_margin"]
    assert result["monitor"] == "val_accuracy" and result["best_monitored"] == max(r["val_accuracy"] for r in evals)

    # The exported policy really prefers the chosen completion more than the reference does.
    policy, reference = load_model(result["model_dir"]), load_model(sft_dir)
    assert sampled_kl(policy, reference, tokenizer, [micro_task.prompt(ex) for ex in micro_task.val], 4)["kl"] > 0


def test_sampled_kl_is_zero_for_the_same_model(micro_model, tokenizer):
    kl = sampled_kl(micro_model, micro_model, tokenizer, ["1+2=", "3+4="] * 4, max_new_tokens=3)
    assert kl["kl"] == pytest.approx(0.0, abs=1e-4) and kl["kl_k3"] == pytest.approx(0.0, abs=1e-6)


def test_dpo_section_names_the_losses_and_checks_label_smoothing():
    assert DPOSection(loss="cdpo", label_smoothing=0.1).loss == "cdpo"
    assert DPOSection(loss="robust", label_smoothing=0.2).loss == "robust"
    assert DPOSection(loss="sigmoid", label_smoothing=0.1).label_smoothing == 0.1  # = cdpo, as TRL's sigmoid
    for loss in ("hinge", "ipo", "ipo_mean"):
        assert DPOSection(loss=loss).loss == loss
        with pytest.raises(ValueError, match="label_smoothing"):
            DPOSection(loss=loss, label_smoothing=0.1)
    for loss, smoothing in (("cdpo", 0.0), ("robust", 0.0), ("robust", 0.5)):
        with pytest.raises(ValueError, match="label_smoothing"):
            DPOSection(loss=loss, label_smoothing=smoothing)
    with pytest.raises(ValueError):
        DPOSection(loss="conservative")


def test_dpo_trains_with_length_averaged_ipo(tmp_path, sft_dir, tokenizer, micro_task):
    # ipo_mean needs each completion's token count: the trainer passes them for training and validation.
    pairs = preference_pairs(micro_task, micro_task.train[:16])
    data = pair_data(tokenizer, pairs, 64)
    lengths = completion_lengths(pair_batch(data, [0, 1]))
    for key, side in (("chosen_lengths", "chosen"), ("rejected_lengths", "rejected")):
        ids = tokenizer([getattr(p, side) for p in pairs[:2]], add_special_tokens=False)["input_ids"]
        assert lengths[key].tolist() == [len(i) + 1 for i in ids]  # completion tokens + EOS
    cfg = DPOSection.model_validate(
        {
            "beta": 0.1,
            "loss": "ipo_mean",
            "sft_coef": 0.0,
            "kl_prompts": 0,
            "eval_problems": 0,
            "select_by": "loss",
            "train": {
                "max_steps": 2,
                "batch_size": 8,
                "eval_every": 2,
                "save_every": 2,
                "log_every": 1,
                "optim": {"lr": 1e-3, "warmup_steps": 0},
            },
        }
    )
    log = MetricsLog(tmp_path / "metrics.jsonl")
    train_dpo(
        model_path=sft_dir,
        tokenizer=tokenizer,
        train_pairs=pairs,
        val_pairs=pairs[:8],
        cfg=cfg,
        out_dir=tmp_path / "dpo",
        seed=0,
        log=log,
        logging=LoggingSection(progress=False),
    )
    first = log.read("dpo")[0]
    # it ran (dpo_loss raises without the lengths); at the start policy = reference, so h = 0 and
    # the loss is (0 − 1/(2β))² = 25
    assert first["loss"] == pytest.approx(25.0, rel=1e-3)
    assert any("val_loss" in r for r in log.read("dpo"))
