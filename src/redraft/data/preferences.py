"""Preference data: pairs in TRL's format, and rankings / ratings turned into pairs.

The feedback export writes ``pairs.jsonl`` (``{"prompt", "chosen", "rejected", "source",
"answer"?}``) and ``ratings.jsonl`` (``{"prompt", "completion", "rating"}``, 1–7). The conversions
are pure functions so the feedback app can import them; the readers report ``file:line`` for any
malformed line.

Pair files may be in any of TRL's preference formats: standard (strings), conversational
(``prompt`` a list of chat messages, ``chosen`` / ``rejected`` lists of assistant messages), and
implicit prompt (``chosen`` / ``rejected`` only, strings or whole conversations: their shared
beginning is the prompt, as TRL's ``extract_prompt`` takes it).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from itertools import combinations
from pathlib import Path
from typing import Any

from redraft.errors import DataError
from redraft.tasks.files import chat_messages, iter_jsonl
from redraft.text.prompts import Message, chat_prompt

MIN_RATING, MAX_RATING = 1, 7
Turns = tuple[Message, ...]  # chat messages (TRL's conversational format)


@dataclass(frozen=True)
class PreferencePair:
    """A prompt and two completions, the chosen one preferred: all strings, or (conversational) all
    chat messages: the prompt's messages, then each completion's (assistant) messages."""

    prompt: str | Turns
    chosen: str | Turns
    rejected: str | Turns
    source: str = "unknown"
    answer: str | None = None
    margin: float = 0.0  # how strongly chosen wins (a rating gap); used by the margin loss only

    @property
    def is_chat(self) -> bool:
        return not isinstance(self.prompt, str)

    @property
    def prompt_key(self) -> str:
        """The prompt as one string (for grouping pairs by prompt), messages included."""
        return self.prompt if isinstance(self.prompt, str) else json.dumps(self.prompt, sort_keys=True)

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
    prompts = sorted({pair.prompt_key for pair in pairs})
    random.Random(seed).shuffle(prompts)
    held_out = set(prompts[: round(len(prompts) * val_fraction)])
    return [p for p in pairs if p.prompt_key not in held_out], [p for p in pairs if p.prompt_key in held_out]


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
        raise DataError(
            "no preference pairs: set pairs.train_path (pairs.jsonl) and/or pairs.ratings_path (ratings.jsonl)"
        )
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


def _text_or_messages(row: dict[str, Any], key: str, where: str) -> str | Turns:
    value = row.get(key)
    if isinstance(value, list):
        return chat_messages(value, where, key)
    if not isinstance(value, str):
        raise DataError(f"{where}: {key!r} must be a string or a list of chat messages, got {value!r:.80}")
    return value


def extract_prompt(
    chosen: str | Turns, rejected: str | Turns, where: str = "pair"
) -> tuple[str | Turns, str | Turns, str | Turns]:
    """(prompt, chosen, rejected) of an implicit-prompt pair: the prompt is the two completions' shared
    beginning (characters, or whole messages), less a space right before the point they part, as
    TRL's ``extract_prompt`` does."""
    if type(chosen) is not type(rejected):
        raise DataError(f"{where}: 'chosen' and 'rejected' must both be strings or both be chat messages")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    if isinstance(chosen, str) and shared and chosen[shared - 1] == " ":
        shared -= 1
    if shared == 0:
        raise DataError(f"{where}: no 'prompt', and 'chosen' and 'rejected' share no beginning to take it from")
    if shared == len(chosen) or shared == len(rejected):
        raise DataError(f"{where}: no 'prompt', and one completion is the beginning of the other: nothing to compare")
    return chosen[:shared], chosen[shared:], rejected[shared:]


def read_pairs(path: str | Path) -> list[PreferencePair]:
    pairs = []
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        chosen, rejected = _text_or_messages(row, "chosen", where), _text_or_messages(row, "rejected", where)
        if row.get("prompt") is None:
            prompt, chosen, rejected = extract_prompt(chosen, rejected, where)
        else:
            prompt = _text_or_messages(row, "prompt", where)
        if not (isinstance(prompt, str) == isinstance(chosen, str) == isinstance(rejected, str)):
            raise DataError(f"{where}: 'prompt', 'chosen' and 'rejected' must all be strings or all be chat messages")
        answer = row.get("answer")
        if answer is not None and not isinstance(answer, str):
            answer = str(answer)
        margin = row.get("margin", 0.0)
        if not isinstance(margin, (int, float)):
            raise DataError(f"{where}: 'margin' must be a number, got {margin!r}")
        pairs.append(
            PreferencePair(
                prompt=prompt,
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


def as_text_pair(tokenizer, pair: PreferencePair) -> PreferencePair:
    """A conversational pair as plain text: the prompt rendered by the chat template (ending with the
    assistant's turn opening, as the sampler's prompts do), each completion its assistant text."""
    if not pair.is_chat:
        return pair

    def text(turns) -> str:
        return "\n".join(m["content"] for m in turns if m.get("role") == "assistant")

    return replace(
        pair, prompt=chat_prompt(tokenizer, pair.prompt), chosen=text(pair.chosen), rejected=text(pair.rejected)
    )


def write_pairs(path: str | Path, pairs: Iterable[PreferencePair]) -> None:
    """Write pairs as JSONL under a temporary name and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text("".join(json.dumps(pair.to_json()) + "\n" for pair in pairs))
    staging.replace(path)
