from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from redraft.errors import DataError
from redraft.feedback.exchange import export_datasets, import_file
from redraft.feedback.queue import (
    Judgement,
    add_prompt,
    enqueue,
    serve_next,
    submit_label,
)
from redraft.feedback.security import add_annotator, authenticate
from tests.feedback.conftest import open_store

FIXTURES = Path(__file__).parent / "fixtures"


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _label_everything(sessions, annotator_id, answers):
    """Label the queue in order, answering each kind from ``answers``."""
    while (item := serve_next(sessions, annotator_id, 600)) is not None:
        submit_label(sessions, annotator_id, item["item_id"], answers[item["kind"]](item), 1000)


def test_export_writes_trl_preference_pairs(db_url, tmp_path):
    engine, sessions = open_store(db_url)
    with sessions.begin() as session:
        prompt = add_prompt(session, "5+7=", ["12", "13", "11"], answer="12")
        enqueue(session, prompt, ["compare", "rank", "rate", "correct"], 1, random.Random(0), correct_index=1)
        add_prompt(session, "free text", ["x"])  # unlabelled prompts export nothing
    with sessions() as session:
        annotator = authenticate(session, add_annotator(sessions, "ann")).id

    def by_text(item, order):
        ids = {output["text"]: output["id"] for output in item["outputs"]}
        return [ids[text] for text in order]

    ratings = {"12": 7, "13": 2, "11": 2}
    _label_everything(
        sessions,
        annotator,
        {
            "compare": lambda item: Judgement(choice="a" if item["outputs"][0]["text"] == "12" else "b"),
            "rank": lambda item: Judgement(ranking=by_text(item, ["12", "11", "13"])),
            "rate": lambda item: Judgement(rating=ratings[item["outputs"][0]["text"]]),
            "correct": lambda item: Judgement(corrected="12"),
        },
    )
    counts = export_datasets(sessions, tmp_path / "out")
    pairs = _read(tmp_path / "out" / "pairs.jsonl")

    def key(row):
        return (row["source"], row["chosen"], row["rejected"])

    assert sorted(map(key, pairs)) == sorted(
        [
            ("comparison", "12", "13"),
            ("ranking", "12", "11"),
            ("ranking", "12", "13"),
            ("ranking", "11", "13"),
            ("rating", "12", "13"),
            ("rating", "12", "11"),  # 13 and 11 tie at 2: no pair
            ("correction", "12", "13"),
        ]
    )
    assert all(row["prompt"] == "5+7=" and row["answer"] == "12" for row in pairs)
    assert sorted((r["completion"], r["rating"]) for r in _read(tmp_path / "out" / "ratings.jsonl")) == [
        ("11", 2),
        ("12", 7),
        ("13", 2),
    ]
    assert _read(tmp_path / "out" / "sft.jsonl") == [{"prompt": "5+7=", "completion": "12", "answer": "12"}]
    assert counts == {"pairs": 7, "ratings": 3, "sft": 1}
    engine.dispose()


def test_ties_and_skips_are_not_pairs(sqlite_url, tmp_path):
    engine, sessions = open_store(sqlite_url)
    with sessions.begin() as session:
        for text in ("1+1=", "2+2="):
            enqueue(session, add_prompt(session, text, ["a", "b"]), ["compare"], 1, random.Random(0))
    with sessions() as session:
        annotator = authenticate(session, add_annotator(sessions, "ann")).id
    choices = iter([Judgement(choice="tie"), Judgement(skip=True)])
    _label_everything(sessions, annotator, {"compare": lambda item: next(choices)})
    assert export_datasets(sessions, tmp_path)["pairs"] == 0
    assert "answer" not in (tmp_path / "pairs.jsonl").read_text()
    engine.dispose()


def test_import_label_studio_pairwise(sqlite_url, tmp_path):
    engine, sessions = open_store(sqlite_url)
    counts = import_file(sessions, FIXTURES / "label_studio_pairwise.json", "label-studio", "ls")
    assert counts == {"items": 2, "labels": 4}
    export_datasets(sessions, tmp_path)
    pairs = sorted((row["prompt"], row["chosen"], row["rejected"]) for row in _read(tmp_path / "pairs.jsonl"))
    assert pairs == [
        ("Name a prime number.", "7", "9"),  # the cancelled annotation is a skip
        ("What is 17+25?", "42", "The answer is 43."),
        ("What is 17+25?", "The answer is 43.", "42"),  # two annotators disagreed: both votes kept
    ]
    engine.dispose()


def test_import_argilla_rankings_v2_and_v1(sqlite_url, tmp_path):
    engine, sessions = open_store(sqlite_url)
    assert import_file(sessions, FIXTURES / "argilla_v2_ranking.json", "argilla") == {"items": 1, "labels": 2}
    assert import_file(sessions, FIXTURES / "argilla_v1_ranking.json", "argilla") == {"items": 1, "labels": 1}
    export_datasets(sessions, tmp_path)
    pairs = [(row["chosen"], row["rejected"], row["source"]) for row in _read(tmp_path / "pairs.jsonl")]
    assert ("Paris", "Lyon", "comparison") in pairs and (
        "Lyon",
        "Paris",
        "comparison",
    ) not in pairs  # discarded response
    assert sorted(p for p in pairs if p[2] == "ranking") == sorted(
        [
            ("12", "twelve, I think", "ranking"),
            ("12", "7", "ranking"),
            ("twelve, I think", "7", "ranking"),
            ("twelve, I think", "12", "ranking"),
            ("twelve, I think", "7", "ranking"),
            ("12", "7", "ranking"),
        ]
    )
    engine.dispose()


def test_import_rejects_malformed_files(sqlite_url, tmp_path):
    engine, sessions = open_store(sqlite_url)
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a list"}')
    with pytest.raises(DataError, match="expected a JSON list"):
        import_file(sessions, bad, "label-studio")
    bad.write_text('[{"id": 1, "data": {"prompt": "p", "left": "x"}}]')
    with pytest.raises(DataError, match="task 1: data needs two answers"):
        import_file(sessions, bad, "label-studio")
    with pytest.raises(DataError, match="unknown import format"):
        import_file(sessions, bad, "csv")
    engine.dispose()
