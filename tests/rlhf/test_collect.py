"""Collection through the feedback web app: queue -> label over HTTP -> export -> pairs."""

import threading
import time

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from redraft.feedback.annotators import simulate_annotators
from redraft.feedback.app import running_server
from redraft.feedback.config import StoreSection
from redraft.feedback.security import add_annotator
from redraft.feedback.store import Item, Label, make_engine, make_sessionmaker
from redraft.rlhf.collect import FeedbackAppCollector
from redraft.rlhf.config import AppCollectSection


def _candidates(examples):
    """A right answer, a wrong one and a right one with trailing junk (longer) per problem."""
    return [[ex.answer, str(int(ex.answer) + 1), ex.answer + " x"] for ex in examples]


def _count(url, what):
    engine = make_engine(StoreSection(url=url))
    try:
        with make_sessionmaker(engine)() as session:
            return session.scalar(select(func.count()).select_from(what))
    finally:
        engine.dispose()


def _queued_items(url):
    """Items in the store so far (0 while the collector is still creating it)."""
    try:
        return _count(url, Item)
    except OperationalError:  # the schema is not there yet
        return 0


def test_simulated_annotators_label_through_the_app(tmp_path, micro_task):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    examples = micro_task.train[:12]
    collector = FeedbackAppCollector(micro_task, url, "round-1-train", AppCollectSection(annotators=3), noise=0.0)
    pairs = collector(examples, _candidates(examples))

    assert _count(url, Label) == len(examples)  # one ranking per prompt, labelled over HTTP
    answers = {micro_task.prompt(ex): ex.answer for ex in examples}
    assert len(pairs) == 3 * len(examples) and {p.source for p in pairs} == {"ranking"}
    for pair in pairs:  # correct first, then shorter: the annotators' preference without noise
        assert pair.answer == answers[pair.prompt]
        assert pair.chosen == pair.answer or (pair.chosen == pair.answer + " x" and pair.rejected != pair.answer)

    # A second call for the same batch (a resumed round) queues nothing new and returns the same pairs.
    assert collector(examples, _candidates(examples)) == pairs
    assert _count(url, Item) == len(examples)


def test_waits_for_people_labelling_in_the_app(tmp_path, micro_task):
    url = f"sqlite:///{tmp_path / 'feedback.db'}"
    examples = micro_task.train[:4]
    settings = AppCollectSection(wait=True, poll_seconds=0.05, kinds=["compare"])
    collector = FeedbackAppCollector(micro_task, url, "round-1-train", settings, noise=0.0)
    result = {}
    loop = threading.Thread(
        target=lambda: result.update(pairs=collector(examples, [[ex.answer, ex.answer + "0"] for ex in examples]))
    )
    loop.start()

    deadline = time.monotonic() + 20
    while _queued_items(url) < len(examples):
        assert time.monotonic() < deadline, "the items were never queued"
        time.sleep(0.05)
    time.sleep(0.2)
    assert loop.is_alive()  # nothing labelled yet: the loop is waiting
    # A person signs in to the running app and labels everything (scripted here through the same API).
    engine = make_engine(StoreSection(url=url))
    token = add_annotator(make_sessionmaker(engine), "alice")
    engine.dispose()
    with running_server(db_url=url) as base_url:
        simulate_annotators(base_url, [token])
    loop.join(20)

    assert not loop.is_alive()
    assert sorted(p.chosen for p in result["pairs"]) == sorted(ex.answer for ex in examples)
