"""Preference data: pairs in TRL's format, and rankings / ratings turned into pairs.

The feedback export writes ``pairs.jsonl`` (``{"prompt", "chosen", "rejected", "source",
"answer"?}``) and ``ratings.jsonl`` (``{"prompt", "completion", "rating"}``, 1–7). The conversions
are pure functions so the feedback app can import them; the readers report ``file:line`` for any
malformed line.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

from redraft.errors import DataError
from redraft.tasks.files import iter_jsonl

MIN_RATING, MAX_RATING = 1, 7


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str
    rejected: str
    source: str = "unknown"
    answer: str | None = None
    margin: float = 0.0  # how strongly chosen wins (a rating gap); used by the margin loss only

    def to_json(self) -> dict[str, Any]:
        row = asdict(self)
        for optional in ("answer", "margin"):
            if not row[optional]:
                del row[optional]
        return row


def ranking_to_pairs(completions_best_first: Sequence[str]) -> list[tuple[str, str]]:
    """(chosen, rejected) for every two completions of a ranking: C(K, 2) pairs, best first.

    Identical texts at two ranks carry no preference and give no pair.
    """
    return [(better, worse) for better, worse in combinations(completions_best_first, 2) if better != worse]


def ratings_to_pairs(rows: Iterable[Mapping[str, Any]], source: str = "rating") -> list[PreferencePair]:
    """Pairs between completions of the same prompt whose ratings differ; the higher one wins.

    ``margin`` is the rating gap. Equal ratings and identical texts give no pair. Prompts keep
    the order they first appear in, completions the order they are rated in.
    """
    by_prompt: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_prompt.setdefault(row["prompt"], []).append(row)
    pairs = []
    for prompt, rated in by_prompt.items():
        for first, second in combinations(rated, 2):
            if first["rating"] == second["rating"] or first["completion"] == second["completion"]:
                continue
            better, worse = (first, second) if first["rating"] > second["rating"] else (second, first)
            pairs.append(
                PreferencePair(
                    prompt=prompt,
                    chosen=better["completion"],
                    rejected=worse["completion"],
                    source=source,
                    answer=better.get("answer") or worse.get("answer"),
                    margin=float(better["rating"] - worse["rating"]),
                )
            )
    return pairs


def split_by_prompt(
    pairs: Sequence[PreferencePair], val_fraction: float, seed: int = 0
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held-out) with every prompt's pairs on one side, so held-out prompts are unseen."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    prompts = sorted({pair.prompt for pair in pairs})
    random.Random(seed).shuffle(prompts)
    held_out = set(prompts[: round(len(prompts) * val_fraction)])
    return [p for p in pairs if p.prompt not in held_out], [p for p in pairs if p.prompt in held_out]


def load_pair_splits(
    pairs_path: str | Path | None,
    ratings_path: str | Path | None = None,
    val_path: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held-out) pairs from the export's files: pairs plus ratings turned into pairs; the
    held-out pairs are ``val_path``'s, or ``val_fraction`` of the prompts split off."""
    pairs = read_pairs(pairs_path) if pairs_path else []
    if ratings_path:
        pairs += ratings_to_pairs(read_ratings(ratings_path))
    if not pairs:
        raise DataError("no preference pairs: set pairs.train_path (pairs.jsonl) and/or pairs.ratings_path (ratings.jsonl)")
    if val_path:
        return pairs, read_pairs(val_path)
    return split_by_prompt(pairs, val_fraction, seed)


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    return [row for _, row in iter_jsonl(path)]


def _require_text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string, got {value!r}")
    return value


def read_pairs(path: str | Path) -> list[PreferencePair]:
    pairs = []
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        chosen, rejected = _require_text(row, "chosen", where), _require_text(row, "rejected", where)
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, str):
            answer = str(answer)
        margin = row.get("margin", 0.0)
        if not isinstance(margin, (int, float)):
            raise DataError(f"{where}: 'margin' must be a number, got {margin!r}")
        pairs.append(
            PreferencePair(
                prompt=_require_text(row, "prompt", where),
                chosen=chosen,
                rejected=rejected,
                source=str(row.get("source", "unknown")),
                answer=answer,
                margin=float(margin),
            )
        )
    return pairs


def read_ratings(path: str | Path) -> list[dict[str, Any]]:
    rows = []
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        _require_text(row, "prompt", where)
        _require_text(row, "completion", where)
        rating = row.get("rating")
        if isinstance(rating, bool) or not isinstance(rating, (int, float)) or not MIN_RATING <= rating <= MAX_RATING:
            raise DataError(f"{where}: 'rating' must be a number from {MIN_RATING} to {MAX_RATING}, got {rating!r}")
        rows.append(row)
    return rows


def write_pairs(path: str | Path, pairs: Iterable[PreferencePair]) -> None:
    """Write pairs as JSONL under a temporary name and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text("".join(json.dumps(pair.to_json()) + "\n" for pair in pairs))
    staging.replace(path)
