"""The feedback store: SQLAlchemy 2 models and the engine/session factory.

One ``labels`` table holds every kind of judgement (single-table inheritance: Comparison,
Ranking, Rating, Correction), so "one label per (item, annotator)" is a single unique
constraint whatever the kind. ``assignments`` are the queue's leases (see queue.py).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    Session,
    mapped_column,
    relationship,
    sessionmaker,
)

from redraft.feedback.config import StoreSection

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ITEM_KINDS = ("compare", "rank", "rate", "correct")
CHOICES = ("a", "b", "tie")
MIN_RATING, MAX_RATING = 1, 7
MAX_ID = 2**31 - 1  # ids are INTEGER columns, 32-bit on PostgreSQL: a larger number names no row
WRITE_OPTION = "redraft_feedback_write"


def utcnow() -> datetime:
    return datetime.now(UTC)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Annotator(Base):
    __tablename__ = "annotators"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256; the token itself is never stored
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Prompt(Base):
    __tablename__ = "prompts"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)  # reference answer when the prompt came from a task
    source: Mapped[str] = mapped_column(String(200), default="")  # task name or import file
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    outputs: Mapped[list[Output]] = relationship(back_populates="prompt")


class Output(Base):
    """One model completion of a prompt."""

    __tablename__ = "outputs"

    id: Mapped[int] = mapped_column(primary_key=True)
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(200), default="")
    run_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    prompt: Mapped[Prompt] = relationship(back_populates="outputs")


class Item(Base):
    """A unit of work in the queue: a prompt with the outputs to compare, rank, rate or correct."""

    __tablename__ = "items"
    __table_args__ = (
        CheckConstraint(f"kind IN {ITEM_KINDS}", name="kind"),
        CheckConstraint("open_slots >= 0", name="open_slots"),
        # The queue looks for the oldest item with a free slot; finished items drop out of this index.
        Index("ix_items_open", "id", sqlite_where=text("open_slots > 0"), postgresql_where=text("open_slots > 0")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    prompt_id: Mapped[int] = mapped_column(ForeignKey("prompts.id"), index=True)
    open_slots: Mapped[int] = mapped_column(Integer)  # annotators still wanted (labels_per_item at creation)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    prompt: Mapped[Prompt] = relationship(lazy="joined")
    entries: Mapped[list[ItemOutput]] = relationship(
        order_by="ItemOutput.position", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def outputs(self) -> list[Output]:
        return [entry.output for entry in self.entries]


class ItemOutput(Base):
    """The outputs an item shows, in display order (A = position 0, B = position 1)."""

    __tablename__ = "item_outputs"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    output_id: Mapped[int] = mapped_column(ForeignKey("outputs.id"), index=True)

    output: Mapped[Output] = relationship(lazy="joined")


class Assignment(Base):
    """A lease: item ``item_id`` was handed to ``annotator_id``; ``done`` once labelled."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        Index("ix_assignments_annotator", "annotator_id", "done"),  # an annotator's live lease
        Index("ix_assignments_expiry", "done", "expires_at"),  # expired leases to hand over
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"))
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    item: Mapped[Item] = relationship()


class Label(Base):
    """One annotator's judgement of one item (at most one: retried submissions return the first)."""

    __tablename__ = "labels"
    __table_args__ = (
        UniqueConstraint("item_id", "annotator_id"),
        CheckConstraint(f"choice IS NULL OR choice IN {CHOICES}", name="choice"),
        CheckConstraint(f"rating IS NULL OR rating BETWEEN {MIN_RATING} AND {MAX_RATING}", name="rating"),
    )
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_on": "kind", "with_polymorphic": "*"}

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    annotator_id: Mapped[int] = mapped_column(ForeignKey("annotators.id"), index=True)
    skipped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    item: Mapped[Item] = relationship()
    annotator: Mapped[Annotator] = relationship()

    def payload(self) -> dict[str, Any]:
        """The judgement as the API shows it."""
        return {"skip": True} if self.skipped else self._judgement()

    def _judgement(self) -> dict[str, Any]:
        raise NotImplementedError


class Comparison(Label):
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "compare"}
    choice: Mapped[str | None] = mapped_column(String(3))  # "a" | "b" | "tie"

    def _judgement(self) -> dict[str, Any]:
        return {"choice": self.choice}


class Ranking(Label):
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "rank"}
    order: Mapped[list[int] | None] = mapped_column(JSON)  # output ids, best first

    def _judgement(self) -> dict[str, Any]:
        return {"ranking": self.order}


class Rating(Label):
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "rate"}
    rating: Mapped[int | None] = mapped_column(Integer)

    def _judgement(self) -> dict[str, Any]:
        return {"rating": self.rating}


class Correction(Label):
    __mapper_args__: ClassVar[dict[str, Any]] = {"polymorphic_identity": "correct"}
    corrected_text: Mapped[str | None] = mapped_column(Text)

    def _judgement(self) -> dict[str, Any]:
        return {"corrected": self.corrected_text}


LABEL_CLASSES: dict[str, type[Label]] = {"compare": Comparison, "rank": Ranking, "rate": Rating, "correct": Correction}


def normalize_url(url: str) -> str:
    """Plain ``postgresql://`` URLs use psycopg 3 (the driver we depend on), not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def use_wal(cursor, timeout_s: float, retry_s: float = 0.02) -> None:
    """Switch a SQLite database to WAL (a no-op once it is, since the mode is stored in the file).

    The switch needs an exclusive lock, and when two connections to a fresh file attempt it at once
    SQLite answers one of them "database is locked" at once, without its busy handler (to avoid a
    deadlock); so that case is retried until ``timeout_s``.
    """
    if cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
        return
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(retry_s)


def make_engine(cfg: StoreSection) -> Engine:
    url = normalize_url(cfg.url)
    if make_url(url).get_backend_name() != "sqlite":
        return create_engine(url, pool_size=cfg.pool_size, max_overflow=2 * cfg.pool_size, pool_pre_ping=True)
    engine = create_engine(url, pool_size=cfg.pool_size, max_overflow=2 * cfg.pool_size)
    busy_ms = int(cfg.busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event issue the BEGIN: write transactions (write_session) use
        # BEGIN IMMEDIATE, since one that reads then writes must hold the write lock from its
        # start, or two concurrent ones deadlock on the upgrade ("database is locked").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        use_wal(cursor, cfg.busy_timeout_s)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        writing = connection.get_execution_options().get(WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


def make_sessionmaker(engine: Engine) -> sessionmaker:
    # SQLite has one writer at a time; queueing this process's writers on a lock is much faster
    # than letting them poll SQLite's busy handler (other processes still wait on busy_timeout).
    writers = threading.Lock() if is_sqlite(engine) else nullcontext()
    return sessionmaker(engine, expire_on_commit=False, info={"writers": writers})


@contextmanager
def write_session(sessions: sessionmaker) -> Iterator[Session]:
    """A transaction that will write: on SQLite it takes the write lock up front (see make_engine)."""
    with sessions.kw["info"]["writers"], sessions.begin() as session:
        session.connection(execution_options={WRITE_OPTION: True})
        yield session
