"""The reward a config names: ``task.reward`` in every command that scores completions.

    checker            the task's own checker (``task.match``: first number, first line, math-verify or
                       the sandbox), 1.0 / 0.0
    math               math-verify equivalence with ``answer`` (``#### 72``, ``\\boxed{\\frac12}``, LaTeX)
    code               the completion's code run against ``tests`` in the sandbox (HumanEval/MBPP fields);
                       on a code task (``task.match: code``), continuations are cut where they leave
                       the function body first, as the task's checker does
    module:function    any callable in TRL's signature ``f(prompts, completions, **columns) -> list[float]``
                       (a module importable from the current folder or the Python path)

A mapping combines several with weights: ``{math: 1.0, "my_rewards:brevity": 0.1}``.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from redraft.config import BUILT_IN_REWARDS
from redraft.errors import ConfigError
from redraft.rewards.base import RewardFn, combine
from redraft.rewards.sandbox import code_reward
from redraft.rewards.verifiers import exact_match, math_match, numeric_match
from redraft.tasks.base import Match
from redraft.tasks.code import function_body


def code_task_reward(**options: Any) -> RewardFn:
    """``code_reward`` as code tasks check: a continuation (``prepend_prompt``) is first cut where it
    leaves the function body (HumanEval's stop sequences), so what a model writes after the
    function does not fail it. ``options`` go to ``code_reward``."""
    passes = code_reward(**options)

    def code_task_passes(prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        prepend = fields.get("prepend_prompt") or [False] * len(completions)
        return passes(prompts, [function_body(c) if p else c for c, p in zip(completions, prepend)], **fields)

    return code_task_passes


RewardSpec = str | dict[str, float]
BUILT_IN: dict[str, Callable[[], RewardFn]] = {"math": math_match, "code": code_reward}
CHECKERS: dict[str, Callable[[], RewardFn]] = {
    "exact": exact_match, "numeric": numeric_match, "math": math_match, "code": code_task_reward,
}  # fmt: skip


def _import_callable(name: str) -> RewardFn:
    module_name, _, attribute = name.partition(":")
    # The console script does not put the current folder on the path; a user's rewards file usually lives there.
    added = os.getcwd() not in sys.path
    if added:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"reward {name!r}: cannot import {module_name!r} ({error})") from None
    finally:
        if added:
            sys.path.remove(os.getcwd())
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ConfigError(f"reward {name!r}: {module_name} has no callable {attribute!r}")
    return function


def named_reward(name: str, match: Match) -> RewardFn:
    """One reward by name; ``checker`` is the task's checker for its ``match`` rule (and so is ``code``
    on a code task)."""
    if name == "checker" or (name == "code" and match == "code"):
        return CHECKERS[match]()
    if name in BUILT_IN:
        return BUILT_IN[name]()
    module_name, colon, attribute = name.partition(":")
    if not (colon and module_name and attribute):
        raise ConfigError(f"unknown reward {name!r}: use {', '.join(BUILT_IN_REWARDS)} or 'module:function'")
    return _import_callable(name)


def reward_from_spec(spec: RewardSpec, match: Match) -> RewardFn | None:
    """The reward ``spec`` names, or None for the plain checker (environments then grade with the
    task directly, which also gives the 'correct' verdict without a second call). ``math`` on a
    math-checked task and ``code`` on a code task are that checker too."""
    if spec == "checker" or (spec in ("math", "code") and spec == match):
        return None
    if isinstance(spec, str):
        return named_reward(spec, match)
    if not spec:
        raise ConfigError("task.reward: a mapping of rewards to weights needs at least one entry")
    return combine(*((named_reward(name, match), float(weight)) for name, weight in spec.items()))
