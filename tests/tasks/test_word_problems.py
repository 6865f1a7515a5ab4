"""task.kind: math — GSM8K-style word problems checked with math-verify."""

import json

import pytest

from redraft.config import TaskSection
from redraft.tasks import build_task
from redraft.tasks.base import extract_answer
from redraft.tasks.math_answers import final_answer, judged_text

SMALL = {"kind": "math", "train_size": 300, "val_size": 20, "test_size": 40}


def test_problems_are_deterministic_disjoint_and_gsm8k_style():
    task = build_task(TaskSection(**SMALL))
    assert task.train == build_task(TaskSection(**SMALL)).train
    assert build_task(TaskSection(**{**SMALL, "seed": 7})).test != task.test
    questions = [[ex.question for ex in split] for split in (task.train, task.val, task.test)]
    assert [len(q) for q in questions] == [300, 20, 40]
    assert len(set().union(*map(set, questions))) == 360  # no repeats, within or across splits
    assert task.match == "math" and task.template == "Question: {question}\nAnswer:"
    for ex in task.train:
        assert ex.answer.isdigit() and ex.fields["value"] == int(ex.answer)
        assert ex.target.startswith(" ") and ex.target.endswith(f"\n#### {ex.answer}")
        assert ex.target.count("\n") >= 2  # reasoning lines, then the answer
    assert task.prompt(task.test[0]) == f"Question: {task.test[0].question}\nAnswer:"


def test_demonstrations_pass_the_tasks_own_checker():
    task = build_task(TaskSection(**SMALL))
    examples = task.train[:60]
    assert task.check_many([ex.target for ex in examples], examples) == [True] * 60
    # the checker grades the final answer, not the numbers along the way
    wrong = [ex.target.rsplit("####", 1)[0] + f"#### {int(ex.answer) + 1}" for ex in examples[:5]]
    assert task.check_many(wrong, examples[:5]) == [False] * 5


def test_math_checker_accepts_gsm8k_boxed_and_latex_answers():
    task = build_task(TaskSection(**SMALL))
    ex = task.test[0]
    n = ex.answer
    accepted = [
        f"#### {n}",
        f"so it is 3.\n#### {n}\nQuestion: another one, 99",
        f"\\boxed{{{n}}}",
        f"The answer is ${n}$.",
        f"{n}",
    ]
    rejected = [f"#### {int(n) + 1}", f"\\boxed{{{int(n) + 1}}}", "", "no idea", f"#### {n}0"]
    assert task.check_many(accepted, [ex] * len(accepted)) == [True] * len(accepted)
    assert task.check_many(rejected, [ex] * len(rejected)) == [False] * len(rejected)


def test_final_answer_extraction():
    assert judged_text("a 1\n#### 72\nmore 5") == "72"
    assert final_answer("a 1\n#### 1,234\nmore 5") == "1,234"
    assert final_answer("x \\boxed{\\frac{1}{2}} then 7") == "\\frac{1}{2}"
    assert final_answer("we get 1,234 then 5.5") == "5.5"
    assert final_answer("nothing") is None
    assert extract_answer("so\n#### 9", "math") == "9"


def test_kind_math_keeps_an_explicit_template_and_exact_match():
    task = build_task(TaskSection(**SMALL, template="Q: {question}\nA:", match="exact"))
    assert task.template == "Q: {question}\nA:" and task.match == "exact"


def test_a_gsm8k_file_graded_with_match_math(tmp_path):
    rows = [{"question": f"Tom has {i} apples and buys {i}. How many?", "final": str(2 * i),
             "solution": f" {i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(1, 41)]  # fmt: skip
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    cfg = dict(kind="file", train_path=str(path), prompt_field="question", answer_field="final",
               completion_field="solution", template="{question}\n", test_size=5, val_size=5)  # fmt: skip
    numeric, math = build_task(TaskSection(**cfg)), build_task(TaskSection(**cfg, match="math"))
    examples = math.train[:10]
    targets = [ex.target for ex in examples]
    assert math.check_many(targets, examples) == [True] * 10
    assert numeric.check_many(targets, examples).count(True) < 10  # the first number is not the answer


def test_unknown_kind_and_match_are_config_errors():
    from redraft.config import load_config
    from redraft.errors import ConfigError

    with pytest.raises(ConfigError):
        load_config("eval", None, ["task.kind=gsm8k"])
    assert load_config("eval", None, ["task.kind=math", "task.match=math"]).task.match == "math"
