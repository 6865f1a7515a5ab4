"""Getting labels out (TRL/HF preference JSONL) and in (Label Studio and Argilla exports).

Export files, one JSON object per line:

- ``pairs.jsonl``: ``{"prompt", "chosen", "rejected", "source"}``; source is ``comparison``
  (A/B; ties and skips give no pair), ``ranking`` (every implied pair), ``rating`` (outputs of
  the same prompt with different mean ratings) or ``correction`` (corrected over original).
- ``ratings.jsonl``: ``{"prompt", "completion", "rating"}``, one row per rating label.
- ``sft.jsonl``: ``{"prompt", "completion"}``, one row per correction.

Every row also has ``"answer"`` (the task's reference answer) when the prompt has one. A pair
whose two texts are identical says nothing and is left out, and so is a correction that only
changed what a browser changes (line ends, a leading newline): it was left as it was.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import combinations
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from redraft.errors import DataError
from redraft.feedback.queue import add_prompt, same_answer
from redraft.feedback.security import MAX_NAME_CHARS
from redraft.feedback.store import (
    Annotator,
    Comparison,
    Correction,
    Item,
    ItemOutput,
    Label,
    Prompt,
    Ranking,
    Rating,
    hash_token,
    write_session,
)


def _row(prompt: Prompt, **fields: Any) -> dict[str, Any]:
    row = {"prompt": prompt.text, **fields}
    if prompt.answer is not None:
        row["answer"] = prompt.answer
    return row


def _pair(prompt: Prompt, chosen: str, rejected: str, source: str) -> Iterator[dict[str, Any]]:
    if chosen != rejected:
        yield _row(prompt, chosen=chosen, rejected=rejected, source=source)


def _labels(session: Session, cls: type[Label]) -> Iterable[Label]:
    return session.scalars(select(cls).where(Label.skipped.is_(False)).order_by(Label.id))


def preference_pairs(session: Session) -> Iterator[dict[str, Any]]:
    for comparison in _labels(session, Comparison):
        if comparison.choice == "tie":
            continue
        a, b = (output.text for output in comparison.item.outputs)
        chosen, rejected = (a, b) if comparison.choice == "a" else (b, a)
        yield from _pair(comparison.item.prompt, chosen, rejected, "comparison")
    for ranking in _labels(session, Ranking):
        text = {output.id: output.text for output in ranking.item.outputs}
        for better, worse in combinations(ranking.order, 2):
            yield from _pair(ranking.item.prompt, text[better], text[worse], "ranking")
    yield from _rating_pairs(session)
    for correction in _labels(session, Correction):
        original = correction.item.outputs[0].text
        if not same_answer(correction.corrected_text, original):  # stores written before the app said so
            yield from _pair(correction.item.prompt, correction.corrected_text, original, "correction")


def _rating_pairs(session: Session) -> Iterator[dict[str, Any]]:
    """Pairs between outputs of one prompt whose mean ratings (over annotators) differ."""
    ratings: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    prompts: dict[int, Prompt] = {}
    texts: dict[int, str] = {}
    for rating in _labels(session, Rating):
        output = rating.item.outputs[0]
        ratings[output.prompt_id][output.id].append(rating.rating)
        prompts[output.prompt_id] = rating.item.prompt
        texts[output.id] = output.text
    for prompt_id, by_output in ratings.items():
        means = {output_id: sum(values) / len(values) for output_id, values in by_output.items()}
        for first, second in combinations(sorted(means), 2):
            if means[first] != means[second]:
                better, worse = (first, second) if means[first] > means[second] else (second, first)
                yield from _pair(prompts[prompt_id], texts[better], texts[worse], "rating")


def rating_rows(session: Session) -> Iterator[dict[str, Any]]:
    for rating in _labels(session, Rating):
        yield _row(rating.item.prompt, completion=rating.item.outputs[0].text, rating=rating.rating)


def sft_rows(session: Session) -> Iterator[dict[str, Any]]:
    for correction in _labels(session, Correction):
        yield _row(correction.item.prompt, completion=correction.corrected_text)


def write_jsonl_atomic(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows to a sibling temporary file and rename it into place; returns the row count."""
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    with staging.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    os.replace(staging, path)
    return count


def export_datasets(sessions: sessionmaker, out_dir: str | Path) -> dict[str, int]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with sessions() as session:
        return {
            "pairs": write_jsonl_atomic(out_dir / "pairs.jsonl", preference_pairs(session)),
            "ratings": write_jsonl_atomic(out_dir / "ratings.jsonl", rating_rows(session)),
            "sft": write_jsonl_atomic(out_dir / "sft.jsonl", sft_rows(session)),
        }


# --- import ---------------------------------------------------------------------------------

LABEL_STUDIO_TEXT_FIELDS = (("answer1", "answer2"), ("text1", "text2"), ("response1", "response2"))


class _Importer:
    """Adds imported prompts, finished items and their labels; one annotator per source user."""

    def __init__(self, session: Session, source: str, annotator_prefix: str):
        self.session, self.source, self.prefix = session, source, annotator_prefix
        self.annotators: dict[str, int] = {}
        self.counts: dict[str, int] = defaultdict(int)

    def annotator(self, user: Any) -> int:
        name = f"{self.prefix}:{user}"[:MAX_NAME_CHARS]
        if name not in self.annotators:
            existing = self.session.scalar(select(Annotator).where(Annotator.name == name))
            if existing is None:
                # Imported annotators never sign in: their token is random and immediately forgotten.
                existing = Annotator(name=name, token_hash=hash_token(os.urandom(32).hex()))
                self.session.add(existing)
                self.session.flush()
            self.annotators[name] = existing.id
        return self.annotators[name]

    def item(self, kind: str, prompt_text: str, texts: list[str]) -> Item:
        prompt = add_prompt(self.session, prompt_text, texts, source=self.source, model=self.source)
        item = Item(kind=kind, prompt=prompt, open_slots=0)  # already labelled elsewhere
        item.entries = [ItemOutput(position=i, output=output) for i, output in enumerate(prompt.outputs)]
        self.session.add(item)
        self.session.flush()
        self.counts["items"] += 1
        return item

    def label(self, label: Label) -> None:
        self.session.add(label)
        self.counts["labels"] += 1


def _field(record: dict[str, Any], key: str, where: str) -> Any:
    if key not in record:
        raise DataError(f"{where}: missing {key!r}")
    return record[key]


def import_label_studio(importer: _Importer, tasks: list[dict[str, Any]], max_chars: int) -> None:
    """Label Studio JSON export of a Pairwise project (``<Pairwise toName="answer1,answer2">``):
    each annotation's ``pairwise`` result says ``{"selected": "left"|"right"}``."""
    for n, task in enumerate(tasks):
        where = f"task {task.get('id', n)}"
        data = _field(task, "data", where)
        names = next((pair for pair in LABEL_STUDIO_TEXT_FIELDS if all(k in data for k in pair)), None)
        if names is None:
            raise DataError(
                f"{where}: data needs two answers named answer1/answer2, text1/text2 or response1/response2"
            )
        texts = [_text(data[name], max_chars, where) for name in names]
        item = importer.item("compare", _text(data.get("prompt", ""), max_chars, where), texts)
        for annotation in task.get("annotations", []):
            annotator_id = importer.annotator(annotation.get("completed_by", "unknown"))
            if annotation.get("was_cancelled"):
                importer.label(Comparison(item=item, annotator_id=annotator_id, skipped=True))
                continue
            selected = [r["value"].get("selected") for r in annotation.get("result", []) if r.get("type") == "pairwise"]
            if not selected or selected[0] not in ("left", "right"):
                raise DataError(f"{where}: annotation {annotation.get('id')} has no pairwise left/right selection")
            importer.label(
                Comparison(item=item, annotator_id=annotator_id, choice="a" if selected[0] == "left" else "b")
            )


def _argilla_rankings(record: dict[str, Any], question: str) -> Iterator[tuple[str, list[str]]]:
    """(user, option values best first) per response, from Argilla 2.x or 1.x records."""
    responses = record.get("responses") or {}
    if isinstance(responses, dict):  # Argilla 2.x: {question: [{"value": [best, ...], "user_id"}]}
        for response in responses.get(question, []):
            yield str(response.get("user_id")), list(response["value"])
        return
    for (
        response
    ) in responses:  # Argilla 1.x: [{"user_id", "values": {question: {"value": [{"value", "rank"}]}}, "status"}]
        if response.get("status", "submitted") != "submitted" or question not in response.get("values", {}):
            continue
        ranked = sorted(response["values"][question]["value"], key=lambda entry: entry["rank"])
        yield str(response.get("user_id")), [entry["value"] for entry in ranked]


def import_argilla(
    importer: _Importer, records: list[dict[str, Any]], max_chars: int, question: str = "ranking"
) -> None:
    """Argilla ranking datasets: ``fields`` hold the prompt and the responses; the ranking
    question's answer orders the response field names (rank 1 best). Tied ranks keep field order."""
    for n, record in enumerate(records):
        where = f"record {record.get('id', n)}"
        fields = _field(record, "fields", where)
        rankings = list(_argilla_rankings(record, question))
        if not rankings:
            continue
        names = sorted(rankings[0][1])
        texts = [_text(fields.get(name), max_chars, where) for name in names]
        item = importer.item(
            "rank" if len(names) > 2 else "compare", _text(fields.get("prompt", ""), max_chars, where), texts
        )
        output_of = {name: output.id for name, output in zip(names, item.outputs, strict=True)}
        for user, order in rankings:
            if sorted(order) != names:
                raise DataError(f"{where}: a response ranks {order}, expected the options {names}")
            annotator_id = importer.annotator(user)
            if item.kind == "rank":
                importer.label(Ranking(item=item, annotator_id=annotator_id, order=[output_of[name] for name in order]))
            else:
                importer.label(
                    Comparison(item=item, annotator_id=annotator_id, choice="a" if order[0] == names[0] else "b")
                )


def _text(value: Any, max_chars: int, where: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{where}: expected text, got {type(value).__name__}")
    if len(value) > max_chars:
        raise DataError(f"{where}: a text is longer than {max_chars} characters")
    return value


def import_file(
    sessions: sessionmaker, path: str | Path, fmt: str, annotator_prefix: str = "imported", max_chars: int = 100_000
) -> dict[str, int]:
    path = Path(path)
    if fmt not in ("label-studio", "argilla"):
        raise DataError(f"unknown import format {fmt!r}; expected label-studio or argilla")
    if not path.is_file():
        raise DataError(f"import file not found: {path}")
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(records, list):
        raise DataError(f"{path}: expected a JSON list of {'tasks' if fmt == 'label-studio' else 'records'}")
    with write_session(sessions) as session:
        importer = _Importer(session, f"{fmt}:{path.name}", annotator_prefix)
        (import_label_studio if fmt == "label-studio" else import_argilla)(importer, records, max_chars)
    return dict(importer.counts)
