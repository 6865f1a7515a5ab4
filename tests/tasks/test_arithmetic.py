import pytest

from redraft.config import TaskSection
from redraft.errors import ConfigError
from redraft.tasks import build_task
from redraft.tasks.arithmetic import carry_free_sum


def test_deterministic_by_seed_and_seed_matters():
    cfg = TaskSection(train_size=200, val_size=20, test_size=50)
    assert build_task(cfg).train == build_task(cfg).train
    other = build_task(cfg.model_copy(update={"seed": 99}))
    assert other.test != build_task(cfg).test


def test_splits_are_disjoint_and_sized():
    task = build_task(TaskSection(train_size=3000, val_size=100, test_size=500, max_digits=2))
    questions = [{ex.question for ex in task.split(s)} for s in ("train", "val", "test")]
    assert [len(q) for q in questions] == [3000, 100, 500]
    assert not (questions[0] & questions[1]) and not (questions[0] & questions[2]) and not (questions[1] & questions[2])


def test_answers_are_correct_and_knobs_apply():
    task = build_task(
        TaskSection(
            ops=["*", "-"], min_digits=2, max_digits=2, num_operands=3, train_size=100, test_size=10, pad_digits=False
        )
    )
    for ex in task.train:
        assert ex.question.count("*") + ex.question.count("-") == 2
        assert int(ex.answer) == eval(ex.question)
        assert task.check(ex.answer, ex)


def test_checker_reads_first_number():
    task = build_task(TaskSection(train_size=10, val_size=0, test_size=10))
    ex = task.test[0]
    assert task.check(f"{ex.answer} and more", ex)
    assert not task.check(str(int(ex.answer) + 1), ex)
    assert not task.check("no number", ex)
    assert task.prompt(ex) == f"{ex.question}="


def test_reverse_answer_and_impossible_sizes():
    task = build_task(TaskSection(reverse_answer=True, train_size=20, test_size=5, pad_digits=False))
    ex = task.test[0]
    assert ex.answer == str(ex.fields["value"])[::-1]
    with pytest.raises(ConfigError, match="cannot draw"):
        build_task(TaskSection(max_digits=1, train_size=500, test_size=10))


def test_few_shot_prompt_uses_training_examples():
    task = build_task(TaskSection(train_size=20, test_size=5, few_shot=2))
    prompt = task.prompt(task.test[0])
    lines = prompt.split("\n")
    assert len(lines) == 3
    assert lines[0] == f"{task.train[0].question}={task.train[0].answer}"
    assert lines[2] == f"{task.test[0].question}="


def test_carry_free_sum_by_hand():
    assert carry_free_sum([58, 67]) == 15 and carry_free_sum([999, 1]) == 990
    assert carry_free_sum([123, 456]) == 579 and carry_free_sum([5, 5]) == 0 and carry_free_sum([7, 8, 9]) == 4


def test_teacher_slips_change_demonstrations_not_answers():
    clean = build_task(TaskSection(train_size=4000, val_size=50, test_size=50))
    slipped = build_task(TaskSection(train_size=4000, val_size=50, test_size=50, teacher_slip_rate=0.6))
    assert [e.question for e in slipped.train] == [e.question for e in clean.train]
    assert [e.answer for e in slipped.train] == [e.answer for e in clean.train]  # the checker grades the truth
    assert slipped.val == clean.val and slipped.test == clean.test  # only demonstrations slip
    wrong = [e for e in slipped.train if e.target != e.answer]
    carries = sum(e.fields["value"] != carry_free_sum([int(v) for v in e.question.split("+")]) for e in clean.train)
    assert 0.5 < len(wrong) / carries < 0.7
    for example in wrong:
        assert not slipped.check(example.target, example) and example.fields["teacher_slip"]
    with pytest.raises(ConfigError):
        build_task(TaskSection(ops=["*"], teacher_slip_rate=0.5))


def test_demonstrations_limit_supervised_data_only():
    task = build_task(TaskSection(train_size=300, val_size=10, test_size=10, demonstrations=120))
    assert len(task.train) == 300 and task.demonstration_examples == task.train[:120]
    assert len(task.corpus()) == 120


def test_padded_digits_sit_at_fixed_positions():
    plain = build_task(TaskSection(train_size=300, val_size=10, test_size=10, teacher_slip_rate=0.75))
    padded = build_task(TaskSection(train_size=300, val_size=10, test_size=10, teacher_slip_rate=0.75, pad_digits=True))
    # The same problems, written 058+067=0125: 3-digit operands, 4-digit answers (999+999=1998).
    for before, after in zip(plain.train, padded.train, strict=True):
        assert [int(v) for v in after.question.split("+")] == [int(v) for v in before.question.split("+")]
        assert [len(v) for v in after.question.split("+")] == [3, 3] and len(after.answer) == 4
        assert int(after.answer) == int(before.answer) and len(after.target) == 4
        assert int(after.target) == int(before.target)  # the same slips, padded too
        assert padded.check(after.answer, after) and padded.check(after.answer.lstrip("0") or "0", after)
    assert any(e.target != e.answer for e in padded.train)
    reversed_ = build_task(TaskSection(train_size=20, test_size=5, pad_digits=True, reverse_answer=True))
    assert reversed_.test[0].answer == str(reversed_.test[0].fields["value"]).zfill(4)[::-1]
    products = build_task(TaskSection(ops=["*"], max_digits=2, train_size=20, test_size=5, pad_digits=True))
    assert all(len(e.answer) == 4 for e in products.test)  # 99*99 = 9801
    with pytest.raises(ConfigError, match="set task.pad_digits: false"):
        build_task(TaskSection(ops=["-"], pad_digits=True))
