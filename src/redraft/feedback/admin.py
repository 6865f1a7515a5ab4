"""What the admin page and /api/admin/stats show: counts, per-annotator activity, agreement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from redraft.feedback.agreement import summarize
from redraft.feedback.store import (
    Annotator,
    Assignment,
    Comparison,
    Item,
    Label,
    Output,
    Prompt,
    Rating,
)


def _grouped(session: Session, key, value, *conditions) -> dict[Any, Any]:
    """{key: value} over groups of ``key``, e.g. labels per annotator."""
    return dict(session.execute(select(key, value).where(*conditions).group_by(key)).all())


def _categorical(session: Session, kind: str, value_column) -> dict[int, dict[int, Any]]:
    """item -> {annotator: category} for the non-skipped labels of one kind."""
    by_item: dict[int, dict[int, Any]] = {}
    rows = session.execute(
        select(Label.item_id, Label.annotator_id, value_column).where(Label.kind == kind, ~Label.skipped)
    )
    for item_id, annotator_id, value in rows:
        by_item.setdefault(item_id, {})[annotator_id] = value
    return by_item


def collect_stats(session: Session) -> dict[str, Any]:
    labels_by_annotator = _grouped(session, Label.annotator_id, func.count())
    skipped_by_annotator = _grouped(session, Label.annotator_id, func.count(), Label.skipped)
    last_label = _grouped(session, Label.annotator_id, func.max(Label.created_at))
    pending = _grouped(session, Assignment.annotator_id, func.count(), ~Assignment.done)
    annotators = [
        {
            "name": annotator.name,
            "admin": annotator.is_admin,
            "labels": labels_by_annotator.get(annotator.id, 0),
            "skipped": skipped_by_annotator.get(annotator.id, 0),
            "pending": pending.get(annotator.id, 0),
            "last_label_at": last.isoformat() if (last := last_label.get(annotator.id)) else None,
        }
        for annotator in session.scalars(select(Annotator).order_by(Annotator.name))
    ]
    return {
        "counts": {
            "prompts": session.scalar(select(func.count()).select_from(Prompt)),
            "outputs": session.scalar(select(func.count()).select_from(Output)),
            "items": _grouped(session, Item.kind, func.count()),
            "items_with_open_slots": session.scalar(select(func.count()).select_from(Item).where(Item.open_slots > 0)),
            "labels": _grouped(session, Label.kind, func.count()),
            "skipped": session.scalar(select(func.count()).select_from(Label).where(Label.skipped)),
        },
        "annotators": annotators,
        "agreement": {
            "compare": summarize(_categorical(session, "compare", Comparison.choice)),
            "rate": summarize(_categorical(session, "rate", Rating.rating)),
        },
    }
