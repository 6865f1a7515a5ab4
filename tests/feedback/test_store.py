from __future__ import annotations

import random
import sqlite3
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.exc import IntegrityError

from redraft.feedback.migrations import upgrade
from redraft.feedback.queue import add_prompt, enqueue
from redraft.feedback.store import Base, Comparison, Rating, normalize_url, use_wal
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


class _LockedCursor:
    """Answers "database is locked" to the first ``failures`` WAL switches, like SQLite under a race."""

    def __init__(self, failures: int, message: str = "database is locked"):
        self.failures, self.message, self.switches = failures, message, 0

    def execute(self, sql):
        if sql == "PRAGMA journal_mode":
            return self
        self.switches += 1
        if self.switches <= self.failures:
            raise sqlite3.OperationalError(self.message)
        return self

    def fetchone(self):
        return ("delete",)


def test_wal_switch_retries_a_locked_database_then_gives_up():
    cursor = _LockedCursor(failures=2)
    use_wal(cursor, timeout_s=5, retry_s=0)
    assert cursor.switches == 3
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        use_wal(_LockedCursor(failures=10**6), timeout_s=0.05, retry_s=0.001)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        use_wal(_LockedCursor(failures=1, message="disk I/O error"), timeout_s=5, retry_s=0)


def _switch_to_wal(path, start: threading.Barrier, errors: list) -> None:
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    start.wait()
    try:
        cursor = connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        use_wal(cursor, timeout_s=30)
    except sqlite3.OperationalError as exc:
        errors.append(exc)
    finally:
        connection.close()


def test_connections_switching_a_fresh_sqlite_file_to_wal_at_once_all_succeed(tmp_path):
    # The race behind a flaky CI failure: two connections to a new file both switch it to WAL and
    # SQLite refuses one at once. Without the retry this failed in about 1 round in 10.
    for round_ in range(200):
        path, start, errors = tmp_path / f"fresh-{round_}.db", threading.Barrier(6), []
        threads = [threading.Thread(target=_switch_to_wal, args=(path, start, errors)) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
