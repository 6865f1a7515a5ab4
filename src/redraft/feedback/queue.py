"""The labelling queue: hand each annotator items they have not labelled, store their labels.

Each item wants ``open_slots`` more annotators. Serving one is a short write transaction:
reuse the annotator's live lease, else take over an expired lease of someone else, else take
a free slot of the oldest open item. Concurrency safety does not rest on the query alone:
``open_slots`` is decremented with a guarded UPDATE (``WHERE open_slots > 0``), the
(item, annotator) pair is unique in ``assignments`` and in ``labels``, and PostgreSQL skips
rows other transactions are serving (``FOR UPDATE SKIP LOCKED``); SQLite serialises writers
(BEGIN IMMEDIATE). A lost race raises IntegrityError and is retried.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import exists, false, func, literal_column, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from redraft.errors import RedraftError
from redraft.feedback.store import (
    LABEL_CLASSES,
    MAX_ID,
    MAX_RATING,
    MIN_RATING,
    Assignment,
    Item,
    ItemOutput,
    Label,
    Output,
    Prompt,
    utcnow,
    write_session,
)

CLAIM_ATTEMPTS = 20
# A literal (not a bound parameter), so that SQLite can use the partial index ix_items_open.
ITEM_IS_OPEN = Item.open_slots > literal_column("0")


class QueueError(RedraftError):
    status_code = 400


class UnknownItem(QueueError):
    status_code = 404


class NotAssigned(QueueError):
    status_code = 409


class InvalidLabel(QueueError):
    status_code = 422


RowId = Annotated[int, Ge(1), Le(MAX_ID)]  # an item or output id as a request may give it


def _storable(text: str) -> bool:
    """PostgreSQL text cannot hold NUL, and no database a lone surrogate (it has no UTF-8 form)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def same_answer(edited: str, original: str) -> bool:
    """Whether an edited answer is the original as a browser sends an untouched textarea back:
    CRLF line ends, and a leading newline dropped (HTML drops one right after ``<textarea>``)."""
    return normalize_newlines(edited).removeprefix("\n") == normalize_newlines(original).removeprefix("\n")


class Judgement(BaseModel):
    """What an annotator says about an item: exactly one of choice, ranking, rating, corrected
    or skip=true; unless skipping, the one matching the item's kind."""

    # Strict: a JSON true is not the rating 1, nor "yes" a skip.
    model_config = ConfigDict(extra="forbid", strict=True)

    choice: str | None = Field(None, pattern="^(a|b|tie)$", description="compare items: a, b or tie")
    ranking: list[RowId] | None = Field(None, max_length=64, description="rank items: the output ids, best first")
    rating: int | None = Field(None, ge=MIN_RATING, le=MAX_RATING, description="rate items")
    corrected: str | None = Field(
        None, min_length=1, description="correct items: the edited answer (CRLF stored as LF; no NUL characters)"
    )
    skip: bool = Field(False, description="true: pass on this item")

    @field_validator("corrected")
    @classmethod
    def _storable_text(cls, text: str | None) -> str | None:
        if text is None:
            return None
        if not _storable(text):
            raise ValueError("must be text without NUL characters or lone surrogates")
        return normalize_newlines(text)

    @model_validator(mode="after")
    def _exactly_one(self) -> Judgement:
        given = [name for name in ("choice", "ranking", "rating", "corrected") if getattr(self, name) is not None]
        if len(given) + self.skip != 1:
            raise ValueError("give exactly one of choice, ranking, rating, corrected or skip=true")
        return self


@dataclass
class Submitted:
    label_id: int
    item_id: int
    kind: str
    label: dict[str, Any]  # the judgement as stored (see Label.payload)
    created: bool  # False: this annotator had already labelled the item; the first label is returned

    @classmethod
    def of(cls, label: Label, created: bool) -> Submitted:
        return cls(label.id, label.item_id, label.kind, label.payload(), created)


def _live_lease(session: Session, annotator_id: int) -> Item | None:
    return session.scalar(
        select(Item)
        .join(Assignment, Assignment.item_id == Item.id)
        .where(Assignment.annotator_id == annotator_id, Assignment.done == false(), Assignment.expires_at > utcnow())
        .order_by(Assignment.id)
        .limit(1)
    )


def _not_mine(annotator_id: int, item_id_column) -> Any:
    return ~exists().where(Assignment.item_id == item_id_column, Assignment.annotator_id == annotator_id)


def _take_expired_lease(session: Session, annotator_id: int, expires_at) -> Item | None:
    lease = session.scalar(
        select(Assignment)
        .where(
            Assignment.done == false(), Assignment.expires_at <= utcnow(), _not_mine(annotator_id, Assignment.item_id)
        )
        .order_by(Assignment.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if lease is None:
        return None
    taken = session.execute(
        update(Assignment)
        .where(Assignment.id == lease.id, Assignment.done == false(), Assignment.expires_at <= utcnow())
        .values(annotator_id=annotator_id, expires_at=expires_at)
        .execution_options(synchronize_session=False)
    )
    return session.get(Item, lease.item_id) if taken.rowcount == 1 else None


def _take_open_slot(session: Session, annotator_id: int, expires_at) -> Item | None:
    item_id = session.scalar(
        select(Item.id)
        .where(ITEM_IS_OPEN, _not_mine(annotator_id, Item.id))
        .order_by(Item.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    if item_id is None:
        return None
    taken = session.execute(
        update(Item)
        .where(Item.id == item_id, ITEM_IS_OPEN)
        .values(open_slots=Item.open_slots - 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:
        return None
    session.add(Assignment(item_id=item_id, annotator_id=annotator_id, expires_at=expires_at))
    session.flush()
    return session.get(Item, item_id)


def serve_next(sessions: sessionmaker, annotator_id: int, lease_seconds: int) -> dict[str, Any] | None:
    """The item (as :func:`item_view`) this annotator should label now: the same one until it is
    labelled or its lease ends; None when nothing is left for them."""
    for attempt in range(CLAIM_ATTEMPTS):
        try:
            with write_session(sessions) as session:
                expires_at = utcnow() + timedelta(seconds=lease_seconds)
                item = (
                    _live_lease(session, annotator_id)
                    or _take_expired_lease(session, annotator_id, expires_at)
                    or _take_open_slot(session, annotator_id, expires_at)
                )
                if item is not None:
                    return item_view(item)
                if not _contended(session, annotator_id):
                    return None
        except IntegrityError:
            pass  # another transaction took the slot first
        time.sleep(0.002 * (attempt + 1))
    return None


def _contended(session: Session, annotator_id: int) -> bool:
    """Whether open items remain for this annotator that were locked by concurrent servers."""
    return session.scalar(select(exists().where(ITEM_IS_OPEN, _not_mine(annotator_id, Item.id)))) or False


def _build_label(item: Item, annotator_id: int, judgement: Judgement, max_text_chars: int) -> Label:
    cls = LABEL_CLASSES[item.kind]
    if judgement.skip:
        return cls(item_id=item.id, annotator_id=annotator_id, skipped=True)
    expected_field = {"compare": "choice", "rank": "ranking", "rate": "rating", "correct": "corrected"}[item.kind]
    value = getattr(judgement, expected_field)
    if value is None:
        raise InvalidLabel(f"item {item.id} is a '{item.kind}' item: send '{expected_field}' (or skip)")
    fields: dict[str, Any]
    if item.kind == "compare":
        fields = {"choice": value}
    elif item.kind == "rank":
        shown = sorted(output.id for output in item.outputs)
        if sorted(value) != shown:
            raise InvalidLabel(f"ranking must order exactly the item's outputs {shown}, each once")
        fields = {"order": value}
    elif item.kind == "rate":
        fields = {"rating": value}
    else:
        if len(value) > max_text_chars:
            raise InvalidLabel(f"corrected text is longer than {max_text_chars} characters")
        original = item.outputs[0].text
        # An answer sent back untouched is kept as it was shown, not as a whitespace-only "correction".
        fields = {"corrected_text": original if same_answer(value, original) else value}
    return cls(item_id=item.id, annotator_id=annotator_id, **fields)


def _existing_label(session: Session, item_id: int, annotator_id: int) -> Label | None:
    return session.scalar(select(Label).where(Label.item_id == item_id, Label.annotator_id == annotator_id))


def submit_label(
    sessions: sessionmaker, annotator_id: int, item_id: int, judgement: Judgement, max_text_chars: int
) -> Submitted:
    """Store a label; a repeated submission (a retry) returns the first label instead of a second."""
    try:
        with write_session(sessions) as session:
            existing = _existing_label(session, item_id, annotator_id)
            if existing is not None:
                return Submitted.of(existing, created=False)
            item = session.get(Item, item_id)
            if item is None:
                raise UnknownItem(f"no item {item_id}")
            lease = session.scalar(
                select(Assignment).where(Assignment.item_id == item_id, Assignment.annotator_id == annotator_id)
            )
            if lease is None:
                raise NotAssigned(f"item {item_id} is not assigned to you (its lease may have passed to someone else)")
            label = _build_label(item, annotator_id, judgement, max_text_chars)
            session.add(label)
            lease.done = True
            session.flush()
            return Submitted.of(label, created=True)
    except IntegrityError:
        # The same submission raced itself (a client retry): the first one won.
        with sessions() as session:
            existing = _existing_label(session, item_id, annotator_id)
            if existing is None:
                raise
            return Submitted.of(existing, created=False)


def progress(session: Session, annotator_id: int) -> dict[str, int]:
    done = session.scalar(select(func.count()).select_from(Label).where(Label.annotator_id == annotator_id))
    available = session.scalar(
        select(func.count()).select_from(Item).where(ITEM_IS_OPEN, _not_mine(annotator_id, Item.id))
    )
    pending = session.scalar(
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.annotator_id == annotator_id, Assignment.done == false())
    )
    return {"done": done or 0, "remaining": (available or 0) + (pending or 0)}


def add_prompt(
    session: Session,
    text: str,
    outputs: list[str],
    *,
    answer: str | None = None,
    source: str = "",
    model: str = "",
    run_id: str | None = None,
) -> Prompt:
    prompt = Prompt(text=text, answer=answer, source=source)
    prompt.outputs = [Output(text=out, model=model, run_id=run_id) for out in outputs]
    session.add(prompt)
    session.flush()
    return prompt


def _item(kind: str, prompt: Prompt, outputs: list[Output], labels_per_item: int) -> Item:
    item = Item(kind=kind, prompt=prompt, open_slots=labels_per_item)
    item.entries = [ItemOutput(position=i, output=output) for i, output in enumerate(outputs)]
    return item


def enqueue(
    session: Session,
    prompt: Prompt,
    kinds: list[str],
    labels_per_item: int,
    rng: random.Random,
    correct_index: int = 0,
) -> list[Item]:
    """Queue a prompt's outputs: compare = disjoint pairs, rank = all of them, rate = each, correct = one.

    Display order is shuffled so that position (A/B, top of a ranking) carries no signal.
    """
    outputs = list(prompt.outputs)
    items: list[Item] = []
    if "compare" in kinds:
        for first in range(0, len(outputs) - 1, 2):
            items.append(_item("compare", prompt, rng.sample(outputs[first : first + 2], 2), labels_per_item))
    if "rank" in kinds and len(outputs) >= 2:
        items.append(_item("rank", prompt, rng.sample(outputs, len(outputs)), labels_per_item))
    if "rate" in kinds:
        items += [_item("rate", prompt, [output], labels_per_item) for output in outputs]
    if "correct" in kinds and outputs:
        items.append(_item("correct", prompt, [outputs[correct_index]], labels_per_item))
    session.add_all(items)
    session.flush()
    return items


def item_view(item: Item) -> dict[str, Any]:
    """An item as annotators (the API, the pages, simulated annotators) see it."""
    return {
        "item_id": item.id,
        "kind": item.kind,
        "prompt": item.prompt.text,
        "reference_answer": item.prompt.answer,
        "outputs": [{"id": output.id, "text": output.text} for output in item.outputs],
    }
