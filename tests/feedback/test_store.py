from __future__ import annotations

import random

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from redraft.feedback.migrations import upgrade
from redraft.feedback.queue import add_prompt, enqueue
from redraft.feedback.store import Base, Comparison, Rating, normalize_url
from tests.feedback.conftest import open_store


def test_migrated_schema_equals_the_models(db_url):
    engine, _ = open_store(db_url)
    upgrade(engine)  # a second upgrade is a no-op
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    engine.dispose()


def _one_item(sessions, kind):
    with sessions.begin() as session:
        prompt = add_prompt(session, "1+1=", ["2", "3"], answer="2")
        items = enqueue(session, prompt, [kind], 1, random.Random(0))
        return items[0].id


def test_database_rejects_out_of_range_ratings_and_second_labels(db_url):
    from redraft.feedback.security import add_annotator, authenticate

    engine, sessions = open_store(db_url)
    token = add_annotator(sessions, "ann")
    with sessions() as session:
        annotator_id = authenticate(session, token).id
    rate_item = _one_item(sessions, "rate")
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(Rating(item_id=rate_item, annotator_id=annotator_id, rating=8))
    compare_item = _one_item(sessions, "compare")
    with sessions.begin() as session:
        session.add(Comparison(item_id=compare_item, annotator_id=annotator_id, choice="a"))
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(Comparison(item_id=compare_item, annotator_id=annotator_id, choice="b"))
    engine.dispose()


def test_plain_postgres_urls_use_psycopg3():
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"
