"""A simulated annotator for learning experiments and tests (pure Python, no model).

It prefers a correct completion (``task.check``) over a wrong one and, between two equally correct
ones, the shorter; with probability ``noise`` it flips a judgement, as a careless human would. It
has the same shape as the feedback app's collection step: examples and their sampled
completions in, preference pairs out.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from itertools import combinations

from redraft.data.preferences import PreferencePair
from redraft.tasks.base import Example, Task


def preference_key(task: Task, example: Example, completion: str) -> tuple[bool, int]:
    """Sorts better completions first: correct before wrong, then shorter before longer."""
    return (not task.check(completion, example), len(completion.strip()))


class SimulatedLabeller:
    def __init__(self, task: Task, noise: float = 0.1, seed: int = 0, source: str = "simulated"):
        if not 0.0 <= noise <= 0.5:
            raise ValueError(f"noise must be in [0, 0.5] (a flip probability), got {noise}")
        self.task, self.noise, self.source = task, noise, source
        self.rng = random.Random(seed)

    def __call__(self, examples: Sequence[Example], completions: Sequence[Sequence[str]]) -> list[PreferencePair]:
        """Pairs between every two distinct completions of a prompt that the preference separates."""
        if len(examples) != len(completions):
            raise ValueError(f"{len(examples)} examples but {len(completions)} lists of completions")
        pairs = []
        for example, candidates in zip(examples, completions):
            prompt = self.task.prompt(example)
            ranked = sorted(dict.fromkeys(candidates), key=lambda text: preference_key(self.task, example, text))
            for better, worse in combinations(ranked, 2):
                if preference_key(self.task, example, better) == preference_key(self.task, example, worse):
                    continue
                if self.rng.random() < self.noise:
                    better, worse = worse, better
                pairs.append(PreferencePair(prompt, better, worse, self.source, example.answer))
        return pairs
