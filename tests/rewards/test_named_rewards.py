import pytest

from redraft.errors import ConfigError
from redraft.rewards.named import reward_from_spec

PROMPTS = ["q1", "q2", "q3"]


def test_checker_is_the_environments_own_and_built_ins_grade_by_name():
    assert reward_from_spec("checker", "numeric") is None
    math = reward_from_spec("math", "numeric")
    assert math(PROMPTS, ["so #### 72", "\\boxed{\\frac{1}{2}}", "no idea"], answer=["72", "0.5", "3"]) == [
        1.0,
        1.0,
        0.0,
    ]


def test_a_module_function_in_the_current_folder_gets_every_column_by_name(tmp_path, monkeypatch):
    (tmp_path / "difficulty_rewards.py").write_text(
        "def by_difficulty(prompts, completions, difficulty, **columns):\n"
        "    return [float(d) if c == columns['answer'][i] else 0.0 "
        "for i, (c, d) in enumerate(zip(completions, difficulty))]\n"
    )
    monkeypatch.chdir(tmp_path)
    reward = reward_from_spec("difficulty_rewards:by_difficulty", "exact")
    assert reward(PROMPTS, ["a", "b", "x"], answer=["a", "b", "c"], difficulty=[1, 2, 3]) == [1.0, 2.0, 0.0]


def test_weighted_mapping_combines_rewards():
    reward = reward_from_spec({"checker": 1.0, "math": 0.5}, "numeric")
    assert reward(PROMPTS, ["72", "0.5", "7"], answer=["72", "1/2", "8"]) == [1.5, 0.5, 0.0]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("maths", "unknown reward 'maths': use checker, math, code or 'module:function'"),
        ("no_such_module_here:f", "cannot import 'no_such_module_here'"),
        ("os:no_such_function", "os has no callable 'no_such_function'"),
        ({}, "needs at least one entry"),
    ],
)
def test_bad_names_are_one_clear_error(spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        reward_from_spec(spec, "exact")
