import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from redraft.errors import ConfigError, DataError
from redraft.rewards import (
    combine,
    exact_match,
    format_reward,
    length_penalty,
    math_match,
    numeric_match,
    truncated_fraction,
    truncation_penalty,
)


def test_exact_and_numeric_match():
    completions = [" 42\nbecause", "forty-two", "The answer is 42.0", "", "-7 apples"]
    answers = ["42", "42", "42", "42", "-7"]
    assert exact_match()([""] * 5, completions, answer=answers) == [1.0, 0.0, 0.0, 0.0, 0.0]
    assert numeric_match()([""] * 5, completions, answer=answers) == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_missing_or_misaligned_field_is_a_data_error():
    with pytest.raises(DataError, match="'answer'"):
        exact_match()(["p"], ["c"], solution=["c"])
    with pytest.raises(DataError, match="2 values for 1"):
        numeric_match()(["p"], ["c"], answer=["1", "2"])


MATH_CASES = [
    ("\\boxed{\\frac{1}{2}}", "0.5", 1.0),
    ("The answer is $\\frac{1}{2}$.", "1/2", 1.0),
    ("So we get $0.5$", "\\frac12", 1.0),  # reference in LaTeX without $...$
    ("\\boxed{\\dfrac{\\sqrt{2}}{2}}", "\\frac{\\sqrt{2}}{2}", 1.0),
    ("Therefore $x = 3$.", "3", 1.0),
    ("\\boxed{2}", "$2$", 1.0),
    ("\\boxed{3}", "4", 0.0),
    ("\\boxed{\\frac{1}{3}}", "0.5", 0.0),
]

GARBAGE = [
    "",
    "\\boxed{",
    "}}}{{{\\frac",
    "$$$$",
    "\\boxed{\\frac{1}{0}}",
    "x" * 100_000,
    "\x00\xff\ud800",
    "NaN",
    "\\begin{matrix}",
]


def test_math_match_equivalences():
    completions, answers, expected = zip(*MATH_CASES)
    assert math_match()([""] * len(completions), list(completions), answer=list(answers)) == list(expected)


def test_math_match_never_raises_on_garbage():
    scores = math_match()([""] * len(GARBAGE), GARBAGE, answer=["1"] * len(GARBAGE))
    assert scores == [0.0] * len(GARBAGE)
    assert math_match()(["", ""], ["\\boxed{1}", "\\boxed{1}"], answer=["", "}{"]) == [0.0, 0.0]


def test_math_match_does_not_hang():
    started = time.monotonic()
    scores = math_match(timeout_seconds=1)([""], ["\\boxed{9^{9^{9^{9}}}}"], answer=["1"])
    assert scores == [0.0] and time.monotonic() - started < 10


def test_math_match_off_the_main_thread():
    # signal-based timeouts need the main thread, so this batch is scored in a child process
    reward = math_match()
    with ThreadPoolExecutor(1) as pool:
        scores = pool.submit(
            reward, ["", "", ""], ["\\boxed{\\frac{1}{2}}", "\\boxed{7}", "\\boxed{"], answer=["0.5", "8", "1"]
        ).result()
    assert scores == [1.0, 0.0, 0.0]


def test_math_match_rejects_fractional_timeout():
    with pytest.raises(ConfigError):
        math_match(timeout_seconds=0.5)


def test_format_reward():
    think = format_reward(r"<think>.*</think>\s*<answer>.*</answer>", fullmatch=True)
    completions = [
        "<think>a\nb</think> <answer>1</answer>",
        "<answer>1</answer>",
        "<think>x</think><answer>1</answer> trailing",
    ]
    assert think([""] * 3, completions) == [1.0, 0.0, 0.0]
    assert format_reward(r"\\boxed\{")([""] * 2, ["so \\boxed{3}", "3"]) == [1.0, 0.0]
    with pytest.raises(ConfigError, match="not a valid regex"):
        format_reward("(unclosed")


def test_length_penalty():
    penalty = length_penalty(target=5, coef=0.1)
    assert penalty(["", "", ""], ["abc", "abcde", "abcdefgh"]) == pytest.approx([0.0, 0.0, -0.3])
    by_words = length_penalty(target=2, coef=1.0, measure=lambda text: len(text.split()))
    assert by_words([""], ["one two three four"]) == [-2.0]
    with pytest.raises(ConfigError):
        length_penalty(target=-1, coef=0.1)


def test_truncation_penalty_and_fraction():
    reasons = ["eos", "length", "stop", "length"]
    assert truncation_penalty(0.5)([""] * 4, ["a"] * 4, finish_reason=reasons) == [0.0, -0.5, 0.0, -0.5]
    assert truncated_fraction(reasons) == 0.5
    assert truncated_fraction([]) == 0.0
    with pytest.raises(DataError, match="finish_reason"):
        truncation_penalty()([""], ["a"])


def test_combine_weights_and_passes_every_field():
    reward = combine((numeric_match(), 1.0), (truncation_penalty(1.0), 0.5), (format_reward(r"^\d+$"), 0.25))
    scores = reward(
        ["", "", ""],
        ["12", "12 and more", "13"],
        answer=["12", "12", "12"],
        finish_reason=["eos", "length", "eos"],
        tests=[None] * 3,
    )
    assert scores == pytest.approx([1.25, 0.5, 0.25])
    assert "numeric_match" in reward.__name__
    with pytest.raises(ConfigError):
        combine()
    with pytest.raises(ConfigError):
        combine(numeric_match())


def test_combine_rejects_misaligned_scores():
    with pytest.raises(DataError, match="returned 1 scores for 2"):
        combine((lambda prompts, completions, **fields: [1.0], 1.0))(["", ""], ["a", "b"])
