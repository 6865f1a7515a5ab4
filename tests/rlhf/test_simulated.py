import pytest

from redraft.config import TaskSection
from redraft.rlhf.simulated import SimulatedLabeller
from redraft.tasks import build_task


@pytest.fixture(scope="module")
def task():
    return build_task(TaskSection(train_size=50, val_size=0, test_size=1, max_digits=2))


def test_prefers_correct_then_shorter(task):
    example = task.train[0]
    right, wrong_short, wrong_long = example.answer, "9", "12345"
    pairs = SimulatedLabeller(task, noise=0.0)([example], [[wrong_long, right, wrong_short, right]])
    assert [(p.chosen, p.rejected) for p in pairs] == [
        (right, wrong_short),
        (right, wrong_long),
        (wrong_short, wrong_long),
    ]
    assert all(
        p.prompt == task.prompt(example) and p.answer == example.answer and p.source == "simulated" for p in pairs
    )


def test_no_pair_between_equally_good_completions(task):
    example = task.train[0]
    assert SimulatedLabeller(task, noise=0.0)([example], [["ab", "cd"]]) == []  # both wrong, same length


def test_noise_flips_about_that_fraction(task):
    examples = task.train[:50]
    completions = [[ex.answer, "x" * 6] for ex in examples] * 20
    pairs = SimulatedLabeller(task, noise=0.2, seed=1)(examples * 20, completions)
    flipped = sum(p.chosen.startswith("x") for p in pairs) / len(pairs)
    assert len(pairs) == 1000 and 0.16 < flipped < 0.24
    with pytest.raises(ValueError, match="noise"):
        SimulatedLabeller(task, noise=0.7)
