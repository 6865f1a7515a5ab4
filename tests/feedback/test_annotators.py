from __future__ import annotations

import random

from redraft.feedback.annotators import decide, percentile, quality


def _item(kind, texts, reference="12"):
    return {
        "item_id": 1,
        "kind": kind,
        "prompt": "5+7=",
        "reference_answer": reference,
        "outputs": [{"id": 10 + i, "text": text} for i, text in enumerate(texts)],
    }


def test_prefers_correct_then_shorter():
    assert quality("12", "12", "correct_then_shorter") > quality("13", "12", "correct_then_shorter")
    assert quality("12", "12", "correct_then_shorter") > quality("12 because 5+7", "12", "correct_then_shorter")
    assert quality("99", "12", "correct_then_shorter") < quality(
        "12 is the long right answer", "12", "correct_then_shorter"
    )
    rng = random.Random(0)
    assert decide(_item("compare", ["13", "12"]), "correct_then_shorter", 0.0, rng) == {"choice": "b"}
    assert decide(_item("compare", ["12", "12"]), "correct_then_shorter", 0.0, rng) == {"choice": "tie"}
    assert decide(_item("rank", ["99", "12", "12 yes"]), "correct_then_shorter", 0.0, rng) == {"ranking": [11, 12, 10]}
    assert decide(_item("correct", ["13"]), "correct_then_shorter", 0.0, rng) == {"corrected": "12"}


def test_noise_flips_preferences_at_the_given_rate():
    rng = random.Random(0)
    choices = [decide(_item("compare", ["13", "12"]), "correct_then_shorter", 0.3, rng)["choice"] for _ in range(2000)]
    assert 0.26 < choices.count("a") / len(choices) < 0.34
    assert {decide(_item("compare", ["13", "12"]), "correct_then_shorter", 1.0, rng)["choice"] for _ in range(20)} == {
        "a"
    }


def test_ratings_stay_in_range():
    rng = random.Random(1)
    ratings = {
        decide(_item("rate", [text]), "correct_then_shorter", 1.0, rng)["rating"]
        for text in ["12", "1", "x" * 500] * 20
    }
    assert ratings <= set(range(1, 8)) and len(ratings) > 2


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) is None
