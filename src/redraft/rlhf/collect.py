"""Collection through the feedback web app: the RLHF loop's human-in-the-loop step.

:class:`FeedbackAppCollector` has the same shape as the in-process simulated labeller (examples
and their sampled completions in, preference pairs out) but goes the way human feedback goes:
it queues the completions as items in the feedback store, has them labelled through the HTTP API,
and reads the pairs back with the feedback export. The labelling is done either by simulated
annotators that the collector starts against a server of its own (``wait: false``), or by
people in the browser (``redraft feedback serve`` on the same store) while the collector waits
until every queued item has its labels (``wait: true``).

Each call tags its outputs with a batch name, so a resumed round finds its items already queued
(and labelled, if people finished) instead of queueing them twice.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from rich.console import Console
from sqlalchemy import exists, func, select
from sqlalchemy.orm import sessionmaker

from redraft.data.preferences import PreferencePair
from redraft.feedback.annotators import simulate_annotators
from redraft.feedback.app import running_server
from redraft.feedback.config import FeedbackConfig, QueueSection, StoreSection
from redraft.feedback.exchange import preference_pairs
from redraft.feedback.migrations import upgrade
from redraft.feedback.queue import add_prompt, enqueue
from redraft.feedback.security import add_annotator
from redraft.feedback.store import (
    Assignment,
    Item,
    Output,
    Prompt,
    make_engine,
    make_sessionmaker,
    write_session,
)
from redraft.rlhf.config import AppCollectSection
from redraft.tasks.base import Example, Task

console = Console(stderr=True)


@dataclass
class FeedbackAppCollector:
    task: Task
    store_url: str
    batch: str  # recorded as the outputs' run id; one batch per call
    settings: AppCollectSection
    noise: float  # simulated annotators' flip probability
    seed: int = 0

    def __call__(self, examples: Sequence[Example], completions: Sequence[Sequence[str]]) -> list[PreferencePair]:
        if len(examples) != len(completions):
            raise ValueError(f"{len(examples)} examples but {len(completions)} lists of completions")
        config = FeedbackConfig(
            store=StoreSection(url=self.store_url), queue=QueueSection(labels_per_item=self.settings.labels_per_item)
        )
        engine = make_engine(config.store)
        try:
            upgrade(engine)
            sessions = make_sessionmaker(engine)
            self._queue(sessions, examples, completions)
            if self.settings.wait:
                self._wait_for_people(sessions)
            else:
                self._simulated_annotators_label(sessions, config)
            return self._pairs(sessions)
        finally:
            engine.dispose()

    def _batch_prompts(self):
        return select(Output.prompt_id).where(Output.run_id == self.batch)

    def _queue(self, sessions: sessionmaker, examples, completions) -> None:
        """Queue the completions, unless a previous run queued this batch already."""
        with write_session(sessions) as session:
            if session.scalar(select(exists(self._batch_prompts()))):
                return
            rng = random.Random(self.seed)
            for example, texts in zip(examples, completions):
                prompt = add_prompt(
                    session,
                    self.task.prompt(example),
                    list(texts),
                    answer=example.answer,
                    source=self.task.name,
                    model="rlhf",
                    run_id=self.batch,
                )
                enqueue(session, prompt, self.settings.kinds, self.settings.labels_per_item, rng)

    def _simulated_annotators_label(self, sessions: sessionmaker, config: FeedbackConfig) -> None:
        # Fresh annotators on every call: tokens are stored hashed, and a resumed call's
        # annotators must still be able to take the items nobody labelled.
        suffix = uuid.uuid4().hex[:6]
        tokens = [
            add_annotator(sessions, f"simulated-{self.batch}-{i}-{suffix}") for i in range(self.settings.annotators)
        ]
        with running_server(config=config) as base_url:
            report = simulate_annotators(base_url, tokens, noise=self.noise, seed=self.seed, match=self.task.match)
        summary = report.summary()
        console.print(
            f"{self.batch}: {summary['labels']} labels from {summary['annotators']} simulated annotators over HTTP "
            f"in {summary['seconds']:.0f} s ({summary['labels_per_s']} labels/s)"
        )

    def _wait_for_people(self, sessions: sessionmaker) -> None:
        announced = False
        while (left := self._unlabelled_items(sessions)) > 0:
            if not announced:
                console.print(
                    f"{self.batch}: waiting for {left} items to be labelled in the feedback app: "
                    f"`redraft feedback serve --db {self.store_url}` "
                    "(annotators: `redraft feedback add-annotator NAME --db ...`)"
                )
                announced = True
            time.sleep(self.settings.poll_seconds)

    def _unlabelled_items(self, sessions: sessionmaker) -> int:
        """The batch's items that still want a label or have one leased but not given."""
        with sessions() as session:
            pending = exists().where(Assignment.item_id == Item.id, Assignment.done.is_(False))
            return session.scalar(
                select(func.count())
                .select_from(Item)
                .where(Item.prompt_id.in_(self._batch_prompts()), (Item.open_slots > 0) | pending)
            )

    def _pairs(self, sessions: sessionmaker) -> list[PreferencePair]:
        """The export's preference pairs (every label kind) of the batch's prompts."""
        with sessions() as session:
            texts = set(session.scalars(select(Prompt.text).where(Prompt.id.in_(self._batch_prompts()))))
            rows = [row for row in preference_pairs(session) if row["prompt"] in texts]
        return [
            PreferencePair(row["prompt"], row["chosen"], row["rejected"], row["source"], row.get("answer"))
            for row in rows
        ]
