"""task.reward: the reward a config names reaches every environment, with every dataset column."""

import json

import pytest

from redraft.config import TaskSection
from redraft.envs import SelfCorrectionEnv, SingleTurnEnv
from redraft.errors import ConfigError
from redraft.tasks import build_task


def _gsm8k_style(tmp_path, **task):
    rows = [{"question": f"Tom has {i} apples and buys {i}. How many?", "final": str(2 * i),
             "solution": f"{i} + {i} = {2 * i}\n#### {2 * i}", "difficulty": i % 3} for i in range(1, 41)]  # fmt: skip
    path = tmp_path / "word_problems.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return build_task(TaskSection(kind="file", train_path=str(path), prompt_field="question", answer_field="final",
                                 template="{question}\n", test_size=5, val_size=5, **task))  # fmt: skip


def _rewards(env_class, task, replies):
    envs = [env_class(task) for _ in replies]
    for env, example in zip(envs, task.train):
        env.reset(example)
    return [result.reward for result in env_class.step_batch(envs, replies)], envs


def test_math_reward_grades_what_the_checker_cannot(tmp_path):
    replies = [f"so 1+1 ... #### {e.answer}" for e in _gsm8k_style(tmp_path).train[:2]]
    checker, _ = _rewards(SingleTurnEnv, _gsm8k_style(tmp_path), replies)
    math, _ = _rewards(SingleTurnEnv, _gsm8k_style(tmp_path, reward="math"), replies)
    assert checker == [0.0, 0.0] and math == [1.0, 1.0]  # the checker reads the first number, "1"


def test_a_users_reward_gets_every_column_under_its_own_name(tmp_path, monkeypatch):
    (tmp_path / "column_rewards.py").write_text(
        "SEEN = {}\n"
        "def graded(prompts, completions, **columns):\n"
        "    SEEN.update(columns)\n"
        "    return [float(d) for d in columns['difficulty']]\n"
    )
    monkeypatch.chdir(tmp_path)
    task = _gsm8k_style(tmp_path, reward={"column_rewards:graded": 2.0, "math": 1.0})
    rewards, envs = _rewards(SelfCorrectionEnv, task, ["#### 0", "#### 0", "#### 0"])
    import column_rewards

    assert sorted(column_rewards.SEEN) == ["answer", "difficulty", "final", "question", "solution"]
    assert rewards == [2.0 * e.fields["difficulty"] for e in task.train[:3]]
    assert envs[0].reward_fn is envs[1].reward_fn  # built once per task


def test_a_reward_that_cannot_be_imported_fails_when_the_first_environment_is_made(tmp_path):
    task = _gsm8k_style(tmp_path, reward="no_such_rewards_module:graded")
    with pytest.raises(ConfigError, match="cannot import 'no_such_rewards_module'"):
        SingleTurnEnv(task)


def test_trl_style_rewards_without_a_prompts_parameter_work_alone_and_combined(tmp_path, monkeypatch):
    # TRL calls reward functions with keywords, so `def f(completions, **kwargs)` is a valid TRL reward.
    (tmp_path / "trl_rewards.py").write_text(
        "def length_reward(completions, **kwargs):\n"
        "    return [float(len(c)) for c in completions]\n"
        "def has_prompt(prompts, completions, **kwargs):\n"
        "    return [float(bool(p)) for p in prompts]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    alone, _ = _rewards(SingleTurnEnv, _gsm8k_style(tmp_path, reward="trl_rewards:length_reward"), ["ab", "abcd"])
    combined, _ = _rewards(
        SingleTurnEnv,
        _gsm8k_style(tmp_path, reward={"trl_rewards:length_reward": 1.0, "trl_rewards:has_prompt": 10.0}),
        ["ab", "abcd"],
    )
    assert alone == [2.0, 4.0] and combined == [12.0, 14.0]
