"""The reward-function convention and how to compose rewards.

A reward function is a plain callable, so users can write their own without subclassing or
forking anything:

    fn(prompts: list[str], completions: list[str], **fields) -> list[float]

Each field is a list aligned with the completions: dataset columns such as ``answer=[...]`` or
``tests=[...]``, and rollout data such as ``finish_reason=[...]``. A reward takes the fields it
needs by name and must accept (and ignore) the rest through ``**fields``, so one set of fields
can feed every reward in a combination.
"""

from __future__ import annotations

from typing import Any, Protocol

from redraft.errors import ConfigError, DataError


class RewardFn(Protocol):
    def __call__(self, prompts: list[str], completions: list[str], **fields: Any) -> list[float]: ...


def require_field(fields: dict[str, Any], name: str, count: int) -> list[Any]:
    """The field ``name`` as a list aligned with ``count`` completions, or a DataError saying why not."""
    if name not in fields or fields[name] is None:
        raise DataError(f"this reward needs the field {name!r} (one value per completion); got fields {sorted(fields)}")
    values = list(fields[name])
    if len(values) != count:
        raise DataError(f"field {name!r} has {len(values)} values for {count} completions")
    return values


def combine(*weighted: tuple[RewardFn, float]) -> RewardFn:
    """A reward that is the weighted sum of several rewards; each one receives all fields."""
    if not weighted:
        raise ConfigError("combine() needs at least one (reward, weight) pair")
    for pair in weighted:
        if not (isinstance(pair, tuple) and len(pair) == 2 and callable(pair[0])):
            raise ConfigError(f"combine() takes (reward_fn, weight) pairs, got {pair!r}")

    def combined(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        total = [0.0] * len(completions)
        for fn, weight in weighted:
            scores = fn(prompts=prompts, completions=completions, **fields)
            if len(scores) != len(completions):
                raise DataError(
                    f"reward {getattr(fn, '__name__', fn)!r} returned {len(scores)} scores "
                    f"for {len(completions)} completions"
                )
            total = [t + weight * float(s) for t, s in zip(total, scores)]
        return total

    combined.__name__ = "combine(" + ", ".join(f"{getattr(fn, '__name__', 'reward')}*{w:g}" for fn, w in weighted) + ")"
    return combined
