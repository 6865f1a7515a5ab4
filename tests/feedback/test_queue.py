from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from redraft.feedback.queue import (
    InvalidLabel,
    Judgement,
    NotAssigned,
    add_prompt,
    enqueue,
    serve_next,
    submit_label,
)
from redraft.feedback.security import add_annotator, authenticate
from redraft.feedback.store import Assignment, Label, utcnow
from tests.feedback.conftest import open_store


def _store(url, prompts=2, kinds=("compare",), labels_per_item=1, annotators=3):
    engine, sessions = open_store(url)
    with sessions.begin() as session:
        for i in range(prompts):
            prompt = add_prompt(session, f"{i}+1=", [str(i + 1), "7", "123"], answer=str(i + 1))
            enqueue(session, prompt, list(kinds), labels_per_item, random.Random(i))
    ids = []
    for n in range(annotators):
        with sessions() as session:
            ids.append(authenticate(session, add_annotator(sessions, f"ann{n}")).id)
    return engine, sessions, ids


def test_an_item_is_served_until_labelled_and_never_again(db_url):
    engine, sessions, (alice, _, _) = _store(db_url, prompts=2)
    first = serve_next(sessions, alice, 600)
    assert serve_next(sessions, alice, 600) == first  # asking again: same item, no second lease
    submit_label(sessions, alice, first["item_id"], Judgement(choice="a"), 100)
    second = serve_next(sessions, alice, 600)
    assert second["item_id"] != first["item_id"]
    submit_label(sessions, alice, second["item_id"], Judgement(skip=True), 100)
    assert serve_next(sessions, alice, 600) is None
    engine.dispose()


def test_labels_per_item_distinct_annotators(db_url):
    engine, sessions, (alice, bob, carol) = _store(db_url, prompts=1, labels_per_item=2)
    item = serve_next(sessions, alice, 600)
    assert serve_next(sessions, bob, 600)["item_id"] == item["item_id"]
    assert serve_next(sessions, carol, 600) is None  # both slots taken
    engine.dispose()


def test_resubmitting_returns_the_first_label(db_url):
    engine, sessions, (alice, _, _) = _store(db_url, prompts=1)
    item = serve_next(sessions, alice, 600)
    first = submit_label(sessions, alice, item["item_id"], Judgement(choice="b"), 100)
    again = submit_label(sessions, alice, item["item_id"], Judgement(choice="a"), 100)
    assert first.created and not again.created
    assert (again.label_id, again.label) == (first.label_id, {"choice": "b"})
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Label)) == 1
    engine.dispose()


def test_labels_must_match_the_item(sqlite_url):
    engine, sessions, (alice, bob, _) = _store(sqlite_url, prompts=1, kinds=("rank",))
    item = serve_next(sessions, alice, 600)
    with pytest.raises(InvalidLabel, match="'rank' item"):
        submit_label(sessions, alice, item["item_id"], Judgement(rating=3), 100)
    with pytest.raises(InvalidLabel, match="exactly the item's outputs"):
        submit_label(sessions, alice, item["item_id"], Judgement(ranking=[1, 2]), 100)
    with pytest.raises(NotAssigned):
        submit_label(sessions, bob, item["item_id"], Judgement(skip=True), 100)
    order = [output["id"] for output in reversed(item["outputs"])]
    assert submit_label(sessions, alice, item["item_id"], Judgement(ranking=order), 100).label == {"ranking": order}
    engine.dispose()


def test_judgement_needs_exactly_one_answer():
    with pytest.raises(ValueError, match="exactly one"):
        Judgement(choice="a", rating=3)
    with pytest.raises(ValueError):
        Judgement()


def test_an_expired_lease_goes_to_someone_else(db_url):
    engine, sessions, (alice, bob, _) = _store(db_url, prompts=1)
    item = serve_next(sessions, alice, 600)
    with sessions.begin() as session:
        session.execute(update(Assignment).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert serve_next(sessions, bob, 600)["item_id"] == item["item_id"]
    with pytest.raises(NotAssigned):
        submit_label(sessions, alice, item["item_id"], Judgement(choice="a"), 100)
    assert submit_label(sessions, bob, item["item_id"], Judgement(choice="a"), 100).created
    engine.dispose()
