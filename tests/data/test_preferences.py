import json

import pytest

from redraft.data.preferences import (
    PreferencePair,
    load_pair_splits,
    ranking_to_pairs,
    ratings_to_pairs,
    read_pairs,
    read_ratings,
    split_by_prompt,
    write_pairs,
)
from redraft.errors import DataError


def test_ranking_gives_every_ordered_pair():
    assert ranking_to_pairs(["a", "b", "c"]) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert ranking_to_pairs(["a", "a", "b"]) == [("a", "b"), ("a", "b")]  # identical texts make no pair
    assert ranking_to_pairs(["only"]) == []


def test_ratings_pair_within_a_prompt_higher_wins():
    rows = [
        {"prompt": "p", "completion": "x", "rating": 2},
        {"prompt": "q", "completion": "z", "rating": 7},
        {"prompt": "p", "completion": "y", "rating": 6, "answer": "5"},
        {"prompt": "p", "completion": "w", "rating": 2},
    ]
    pairs = ratings_to_pairs(rows)
    assert [(p.prompt, p.chosen, p.rejected, p.margin) for p in pairs] == [("p", "y", "x", 4.0), ("p", "y", "w", 4.0)]
    assert pairs[0].answer == "5" and pairs[0].source == "rating"


def test_read_pairs_round_trip_and_errors_name_the_line(tmp_path):
    pairs = [PreferencePair("1+1=", "2", "3", "simulated", "2"), PreferencePair("2+2=", "4", "5", margin=2.0)]
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, pairs)
    assert read_pairs(path) == pairs
    assert "margin" not in json.loads(path.read_text().splitlines()[0])  # TRL columns only unless set

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n\n{"prompt": "a", "chosen": 1, "rejected": "c"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:3: 'chosen' must be a string"):
        read_pairs(bad)
    bad.write_text('{"prompt": "a"\n')
    with pytest.raises(DataError, match=r"bad.jsonl:1: invalid JSON"):
        read_pairs(bad)
    with pytest.raises(DataError, match="file not found"):
        read_pairs(tmp_path / "missing.jsonl")


def test_read_ratings_checks_the_scale(tmp_path):
    path = tmp_path / "ratings.jsonl"
    path.write_text(
        '{"prompt": "p", "completion": "a", "rating": 7}\n{"prompt": "p", "completion": "b", "rating": 9}\n'
    )
    with pytest.raises(DataError, match=r"ratings.jsonl:2: 'rating' must be a number from 1 to 7"):
        read_ratings(path)


def test_split_keeps_each_prompt_on_one_side():
    pairs = [PreferencePair(f"p{i % 10}", "a", f"b{i}") for i in range(50)]
    train, val = split_by_prompt(pairs, 0.2, seed=3)
    assert len({p.prompt for p in val}) == 2 and not {p.prompt for p in val} & {p.prompt for p in train}
    assert len(train) + len(val) == 50


def test_load_pair_splits_merges_ratings(tmp_path):
    write_pairs(tmp_path / "pairs.jsonl", [PreferencePair("p", "a", "b")])
    (tmp_path / "ratings.jsonl").write_text(
        '{"prompt": "q", "completion": "c", "rating": 5}\n{"prompt": "q", "completion": "d", "rating": 1}\n'
    )
    write_pairs(tmp_path / "val.jsonl", [PreferencePair("r", "e", "f")])
    train, val = load_pair_splits(tmp_path / "pairs.jsonl", tmp_path / "ratings.jsonl", tmp_path / "val.jsonl")
    assert [(p.prompt, p.chosen) for p in train] == [("p", "a"), ("q", "c")] and val[0].prompt == "r"
    with pytest.raises(DataError, match="no preference pairs"):
        load_pair_splits(None)
