import pytest

from redraft.config import TaskConfig
from redraft.errors import ConfigError
from redraft.tasks import build_task


def test_deterministic_by_seed_and_seed_matters():
    cfg = TaskConfig(train_size=200, val_size=20, test_size=50)
    assert build_task(cfg).train == build_task(cfg).train
    other = build_task(cfg.model_copy(update={"seed": 99}))
    assert other.test != build_task(cfg).test


def test_splits_are_disjoint_and_sized():
    task = build_task(TaskConfig(train_size=3000, val_size=100, test_size=500, max_digits=2))
    questions = [{ex.question for ex in task.split(s)} for s in ("train", "val", "test")]
    assert [len(q) for q in questions] == [3000, 100, 500]
    assert not (questions[0] & questions[1]) and not (questions[0] & questions[2]) and not (questions[1] & questions[2])


def test_answers_are_correct_and_knobs_apply():
    task = build_task(TaskConfig(ops=["*", "-"], min_digits=2, max_digits=2, num_operands=3, train_size=100, test_size=10))
    for ex in task.train:
        assert ex.question.count("*") + ex.question.count("-") == 2
        assert int(ex.answer) == eval(ex.question)
        assert task.check(ex.answer, ex)


def test_checker_reads_first_number():
    task = build_task(TaskConfig(train_size=10, val_size=0, test_size=10))
    ex = task.test[0]
    assert task.check(f"{ex.answer} and more", ex)
    assert not task.check(str(int(ex.answer) + 1), ex)
    assert not task.check("no number", ex)
    assert task.prompt(ex) == f"{ex.question}="


def test_reverse_answer_and_impossible_sizes():
    task = build_task(TaskConfig(reverse_answer=True, train_size=20, test_size=5))
    ex = task.test[0]
    assert ex.answer == str(ex.fields["value"])[::-1]
    with pytest.raises(ConfigError, match="cannot draw"):
        build_task(TaskConfig(max_digits=1, train_size=500, test_size=10))


def test_few_shot_prompt_uses_training_examples():
    task = build_task(TaskConfig(train_size=20, test_size=5, few_shot=2))
    prompt = task.prompt(task.test[0])
    lines = prompt.split("\n")
    assert len(lines) == 3
    assert lines[0] == f"{task.train[0].question}={task.train[0].answer}"
    assert lines[2] == f"{task.test[0].question}="
