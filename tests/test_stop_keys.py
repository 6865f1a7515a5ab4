"""Stop strings and answer lengths reach every place that samples: SFT's and DPO's validation answers, the
score stage, whose drafts, STaR, RL runs and evaluation share one score.max_new_tokens and one score.stop, and the
RLHF rounds (one rlhf.max_new_tokens and rlhf.stop)."""

import pytest

import redraft.pipeline
import redraft.training.dpo
from redraft.config import DPOSection, LoggingSection, RLSection, ScoreSection, SelfCorrectionSection, load_config
from redraft.config_docs import section_tables
from redraft.errors import ConfigError
from redraft.models import save_model
from redraft.training.logging import MetricsLog
from redraft.training.score import pair_sft_episodes, star_episodes


def test_the_score_stage_has_one_answer_length_and_one_stop_list():
    cfg = load_config("score", None, ["score.max_new_tokens=5", 'score.stop=["\\n"]']).score
    for section in (cfg.rl, cfg.eval, cfg.pair_sft, cfg.star):
        assert (section.max_new_tokens, section.stop) == (5, ["\n"])
    assert ScoreSection(max_new_tokens=12).rl.max_new_tokens == 12
    dumped = cfg.model_dump(mode="json")
    assert dumped["max_new_tokens"] == 5 and all(
        "max_new_tokens" not in dumped[name] and "stop" not in dumped[name] for name in ("rl", "eval", "pair_sft")
    )
    assert ScoreSection.model_validate(dumped) == cfg  # a saved config.yaml loads back
    for key in ("score.rl.max_new_tokens=5", "score.eval.stop=[x]", "score.pair_sft.max_new_tokens=5"):
        with pytest.raises(ConfigError, match=r"set score\.(max_new_tokens|stop) instead"):
            load_config("score", None, [key])
    with pytest.raises(ValueError, match="set score.max_new_tokens instead"):
        ScoreSection(rl=RLSection(max_new_tokens=5))
    keys = {row[0] for table in section_tables(cfg, "score") for row in table.rows}  # the config reference's rows
    assert "score.max_new_tokens" in keys and not {"score.rl.max_new_tokens", "score.eval.stop"} & keys


def test_pair_sft_drafts_and_star_samples_end_at_the_stop_string(micro_model, tokenizer, micro_task):
    protocol = SelfCorrectionSection()
    examples = micro_task.train[:32]

    def drafts(stop):
        episodes = pair_sft_episodes(micro_model, tokenizer, micro_task, examples, protocol, 1.0, 8, 0, 1, stop)
        return [episode.turns[0] for episode in episodes]

    # A character from inside an unstopped draft: the same seed then samples the same draft up to it.
    row, text = next((i, t.reply_text) for i, t in enumerate(drafts(())) if any(c.isalnum() for c in t.reply_text[1:]))
    stop = next(c for c in text[1:] if c.isalnum())
    stopped = drafts([stop])
    assert stopped[row].finish_reason == "stop" and stopped[row].reply_text == text[: text.index(stop, 1)]
    assert not any(stop in turn.reply_text for turn in stopped)
    star = star_episodes(micro_model, tokenizer, micro_task, examples, protocol, 1.0, 8, 0, [stop])
    assert all(stop not in turn.reply_text for episode in star for turn in episode.turns)


def test_sft_and_dpo_validation_answers_use_their_stop_keys(tmp_path, micro_model, tokenizer, micro_task, monkeypatch):
    seen = []

    def greedy_accuracy(*args, stop=(), **kwargs):
        seen.append(list(stop))
        return 0.0

    monkeypatch.setattr(redraft.pipeline, "greedy_accuracy", greedy_accuracy)
    monkeypatch.setattr(redraft.training.dpo, "greedy_accuracy", greedy_accuracy)
    save_model(micro_model, tokenizer, tmp_path / "sft-start")
    sets = ["train.max_steps=2", "train.eval_every=2", "train.batch_size=8", "train.eval_accuracy_problems=4"]
    sft = load_config(
        "sft", None, [*sets, f"model.path={tmp_path / 'sft-start'}", 'train.stop=["+"]', "logging.progress=false"]
    )
    redraft.pipeline.run_sft(sft, tmp_path / "sft", MetricsLog(tmp_path / "sft.jsonl"), task=micro_task)
    assert seen == [["+"]]

    from tests.training.test_dpo import preference_pairs

    dpo = DPOSection.model_validate(
        {
            "stop": ["+"],
            "eval_problems": 4,
            "kl_prompts": 4,
            "train": {"max_steps": 2, "eval_every": 2, "batch_size": 8},
        }
    )
    redraft.training.dpo.train_dpo(
        model_path=tmp_path / "sft-start",
        tokenizer=tokenizer,
        train_pairs=preference_pairs(micro_task, micro_task.train[:16]),
        val_pairs=preference_pairs(micro_task, micro_task.val[:8]),
        cfg=dpo,
        out_dir=tmp_path / "dpo",
        seed=0,
        log=MetricsLog(tmp_path / "dpo.jsonl"),
        logging=LoggingSection(progress=False),
        task=micro_task,
    )
    assert seen == [["+"], ["+"]]


def test_rlhf_has_one_answer_length_and_stop_list_for_collection_ppo_dpo_and_evaluation(
    micro_model, tokenizer, micro_task
):
    from redraft.rlhf.config import RLHFConfig, RLHFSection, SimulatedSection
    from redraft.rlhf.loop import sample_completions

    cfg = load_config(RLHFConfig, None, ['rlhf.stop=["7"]', "rlhf.max_new_tokens=9"]).rlhf
    assert cfg.simulated.stop == cfg.ppo.stop == cfg.dpo.stop == ["7"] and cfg.ppo.algorithm == "ppo"
    assert cfg.simulated.max_new_tokens == cfg.ppo.max_new_tokens == cfg.dpo.max_new_tokens == 9
    for key in ("rlhf.ppo.stop=[x]", "rlhf.ppo.max_new_tokens=5", "rlhf.dpo.max_new_tokens=5"):
        with pytest.raises(ConfigError, match=r"set rlhf\.(stop|max_new_tokens) instead"):
            load_config(RLHFConfig, None, [key])
    dumped = cfg.model_dump(mode="json")
    assert dumped["max_new_tokens"] == 9 and not any("max_new_tokens" in dumped[name] for name in ("ppo", "dpo"))
    assert RLHFSection.model_validate(dumped) == cfg  # a saved config.yaml loads back

    def completions(stop):
        settings = SimulatedSection(samples_per_prompt=2, max_new_tokens=8, stop=stop)
        return [text for group in sample_completions(micro_model, tokenizer, micro_task, micro_task.val, settings, 0)
                for text in group]  # fmt: skip

    unstopped = completions([])
    stop = next(c for text in unstopped for c in text[1:] if c.isalnum())
    stopped = completions([stop])
    assert not any(stop in text for text in stopped)
    assert [text.split(stop)[0] for text in unstopped] == stopped


def test_dpo_and_reward_models_have_no_second_answer_length_in_their_training_section():
    from redraft.rlhf.config import DPOConfig, RewardModelConfig

    assert load_config(DPOConfig, None, ["dpo.max_new_tokens=7"]).dpo.train.max_new_tokens == 7
    refused = {
        (DPOConfig, "dpo.train.max_new_tokens=7"): r"set dpo\.max_new_tokens instead",
        (DPOConfig, "dpo.train.eval_accuracy_problems=7"): r"dpo\.eval_problems sets the checks",
        (RewardModelConfig, "reward_model.train.stop=[x]"): "a reward model does not generate",
    }
    for (config, key), message in refused.items():
        with pytest.raises(ConfigError, match=message):
            load_config(config, None, [key])
    for config, stage in ((DPOConfig, "dpo"), (RewardModelConfig, "reward_model")):
        cfg = load_config(config, None, [])
        keys = {row[0] for table in section_tables(getattr(cfg, stage), stage) for row in table.rows}
        assert (
            f"{stage}.train.max_steps" in keys and not {f"{stage}.train.max_new_tokens", f"{stage}.train.stop"} & keys
        )
