"""The trainer classes take what TRL's take (a model or its path, a datasets.Dataset, reward callables) and run
the same stages as the CLI: TRL's GRPO quickstart works with redraft's names."""

import json

import datasets
import pytest

from redraft import DPOTrainer, GRPOConfig, GRPOTrainer, RewardConfig, RewardTrainer, SFTConfig, SFTTrainer
from redraft.errors import ConfigError
from redraft.models import load_model, save_model
from tests.training.test_rl import MICRO_RL


@pytest.fixture()
def start(tmp_path, micro_model, tokenizer):
    save_model(micro_model, tokenizer, tmp_path / "start")
    return str(tmp_path / "start")


def test_the_grpo_quickstart_raises_the_reward_and_hands_columns_to_rewards(tmp_path, start, micro_task):
    dataset = datasets.Dataset.from_list(
        [{"prompt": ex.question, "answer": ex.answer, "difficulty": len(ex.question)} for ex in micro_task.train]
    )
    seen_columns = set()

    def starts_with_a_digit(prompts, completions, difficulty, **kwargs):
        seen_columns.update(kwargs, {"difficulty"} if len(difficulty) == len(completions) else set())
        return [1.0 if c[:1].isdigit() else 0.0 for c in completions]

    args = GRPOConfig.model_validate(
        {
            "run": {"output_dir": str(tmp_path), "name": "grpo"},
            "logging": {"progress": False},
            "rl": MICRO_RL,
        }
    )
    trainer = GRPOTrainer(model=start, reward_funcs=starts_with_a_digit, args=args, train_dataset=dataset)
    result = trainer.train()
    records = [json.loads(line) for line in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()]
    rewards = [r["reward"] for r in records if r["stage"] == "rl" and "reward" in r]
    assert len(rewards) == 12 and sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.2, rewards
    assert {"difficulty", "answer"} <= seen_columns  # every dataset column, under its own name
    trainer.save_model(tmp_path / "saved")
    assert load_model(tmp_path / "saved").num_parameters() == load_model(result["model_dir"]).num_parameters()
    with pytest.raises(ConfigError, match="2 weights for 1 reward_funcs"):
        GRPOTrainer(model=start, reward_funcs=[starts_with_a_digit], reward_weights=[1, 2])


def test_sft_trainer_takes_a_model_object_and_its_tokenizer(tmp_path, micro_model, tokenizer, micro_task):
    dataset = datasets.Dataset.from_list(
        [{"prompt": f"{ex.question}=", "completion": ex.answer} for ex in micro_task.train[:200]]
    )
    args = SFTConfig.model_validate(
        {
            "run": {"output_dir": str(tmp_path), "name": "sft"},
            "logging": {"progress": False},
            "train": {"max_steps": 4, "batch_size": 16, "eval_every": 4, "eval_accuracy_problems": 0},
        }
    )
    trainer = SFTTrainer(model=micro_model, args=args, train_dataset=dataset, processing_class=tokenizer)
    result = trainer.train()
    assert result["steps"] == 4 and (tmp_path / "sft" / "model" / "model.safetensors").is_file()
    assert (tmp_path / "sft-data" / "train.jsonl").is_file()  # the dataset as the run's file, for --resume
    with pytest.raises(ConfigError, match="SFTTrainer takes args=SFTConfig"):
        SFTTrainer(model=micro_model, args=GRPOConfig())


def test_dpo_and_reward_trainers_take_preference_datasets(tmp_path, start, micro_task):
    rows = [{"prompt": f"{ex.question}=", "chosen": ex.answer, "rejected": ex.answer + "00"} for ex in micro_task.train]
    dataset = datasets.Dataset.from_list(rows[:200])
    train = {"max_steps": 2, "batch_size": 16, "eval_every": 2}
    common = {"logging": {"progress": False}}
    dpo = DPOTrainer(
        model=start,
        args=DPOTrainer.config_class.model_validate(
            {**common, "run": {"output_dir": str(tmp_path), "name": "dpo"}, "dpo": {"train": train}}
        ),
        train_dataset=dataset,
    )
    assert dpo.train()["monitor"] == "val_reward_accuracy"  # no task: the pairs alone judge the policy
    assert (tmp_path / "dpo" / "model" / "model.safetensors").is_file()
    reward = RewardTrainer(
        model=start,
        args=RewardConfig.model_validate(
            {**common, "run": {"output_dir": str(tmp_path), "name": "rm"}, "reward_model": {"train": train}}
        ),
        train_dataset=dataset,
        eval_dataset=rows[200:260],
    )
    result = reward.train()
    assert result["train_pairs"] == 200 and 0.0 <= result["val_accuracy"] <= 1.0
    with pytest.raises(ConfigError, match="ref_model=None"):
        DPOTrainer(model=start, ref_model=start)


def test_score_trainer_runs_score_and_its_report(tmp_path, start, micro_task):
    from redraft import ScoreConfig, SCoReTrainer

    dataset = [{"prompt": ex.question, "answer": ex.answer} for ex in micro_task.train]
    args = ScoreConfig.model_validate(
        {
            "run": {"output_dir": str(tmp_path), "name": "score"},
            "logging": {"progress": False},
            "score": {
                "baselines": [],
                "max_new_tokens": 3,
                "pair_sft": {"max_steps": 2, "batch_size": 16},
                "stage1_iterations": 1,
                "stage2_iterations": 1,
                "rl": {"prompts_per_iteration": 4, "samples_per_prompt": 2},
                "eval": {"num_problems": 8, "scaling_budgets": []},
            },
        }
    )
    result = SCoReTrainer(model=start, args=args, train_dataset=dataset).train()
    assert set(result["models"]) == {"score"} and result["model_dir"] == result["models"]["score"]
    assert "Acc@t1" in (tmp_path / "score" / "report.md").read_text()
