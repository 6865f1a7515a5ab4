"""A load scenario shared by the load test and bench/feedback_load.py: many simulated
annotators labelling synthetic arithmetic items at once through a real server
(`redraft feedback serve` in a process of its own)."""

from __future__ import annotations

import random

from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from redraft.feedback.annotators import SimulationReport, simulate_annotators
from redraft.feedback.app import server_process
from redraft.feedback.config import FeedbackConfig, QueueSection, ServerSection, StoreSection
from redraft.feedback.migrations import upgrade
from redraft.feedback.queue import add_prompt, enqueue
from redraft.feedback.security import add_annotator
from redraft.feedback.store import (
    Assignment,
    Item,
    Label,
    make_engine,
    make_sessionmaker,
)


def seed_arithmetic_items(sessions: sessionmaker, items: int, labels_per_item: int, seed: int = 0) -> None:
    """Queue ``items`` items (one compare and two rate items per prompt) about random sums."""
    rng = random.Random(seed)
    with sessions.begin() as session:
        for _ in range((items + 2) // 3):
            a, b = rng.randrange(100), rng.randrange(100)
            answers = [str(a + b), str(a + b + rng.choice((-10, -1, 1, 10)))]
            prompt = add_prompt(session, f"{a}+{b}=", answers, answer=str(a + b), source="synthetic", model="load")
            enqueue(session, prompt, ["compare", "rate"], labels_per_item, rng)


def store_counts(sessions: sessionmaker) -> dict[str, int]:
    """What a load run left in the store, for checking that nothing was lost or duplicated."""
    with sessions() as session:
        per_pair = select(Label.item_id, Label.annotator_id, func.count().label("n")).group_by(
            Label.item_id, Label.annotator_id
        )
        per_item = select(Label.item_id, func.count().label("n")).group_by(Label.item_id)
        return {
            "labels": session.scalar(select(func.count()).select_from(Label)),
            "duplicate_pairs": session.scalar(
                select(func.count()).select_from(per_pair.having(func.count() > 1).subquery())
            ),
            "max_labels_per_item": session.scalar(select(func.max(per_item.subquery().c.n))) or 0,
            "finished_assignments": session.scalar(select(func.count()).select_from(Assignment).where(Assignment.done)),
            "open_slots": session.scalar(select(func.sum(Item.open_slots))) or 0,
        }


def run_load(
    db_url: str,
    annotators: int,
    labels_each: int,
    labels_per_item: int = 2,
    noise: float = 0.1,
    seed: int = 0,
    workers: int = 2,
) -> tuple[SimulationReport, dict[str, int]]:
    """Seed enough items, let the annotators label concurrently; return the client-side report
    and the store counts."""
    config = FeedbackConfig(
        store=StoreSection(url=db_url),
        queue=QueueSection(labels_per_item=labels_per_item),
        server=ServerSection(access_log=False, workers=workers),
    )
    engine = make_engine(config.store)
    upgrade(engine)
    sessions = make_sessionmaker(engine)
    # A little slack: the last items may still want a label only from annotators who gave theirs.
    needed = -(-annotators * labels_each // labels_per_item) + annotators
    seed_arithmetic_items(sessions, needed, labels_per_item, seed)
    tokens = [add_annotator(sessions, f"sim-{i}") for i in range(annotators)]
    with server_process(config) as base_url:  # its own process, as in production
        report = simulate_annotators(base_url, tokens, noise=noise, max_labels=labels_each, seed=seed)
    counts = store_counts(sessions)
    engine.dispose()
    return report, counts
