"""Greedy accuracy and pass@k of a model on a task split."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from redraft.config import EvalSection, SamplingSection
from redraft.envs.base import task_verifier
from redraft.evaluation.metrics import mean_ci95, pass_at_k
from redraft.rollout.sampler import generate
from redraft.tasks.base import Example, Task


@dataclass
class EvalResult:
    split: str
    num_problems: int
    greedy_accuracy: float
    greedy_accuracy_ci95: float
    k: int
    pass_at_k: dict[int, float]
    sample_accuracy: float  # mean correctness of the temperature samples (= pass@1 estimate)
    truncated_fraction: float

    def summary(self) -> dict[str, float]:
        return {
            "greedy_accuracy": self.greedy_accuracy,
            "greedy_accuracy_ci95": self.greedy_accuracy_ci95,
            f"pass@{self.k}": self.pass_at_k[self.k],
            "pass@1": self.pass_at_k[1],
        }


def greedy_answers(
    model: PreTrainedModel,
    tokenizer,
    task: Task,
    examples: list[Example],
    max_new_tokens: int = 16,
    batch_size: int = 512,
    stop: Sequence[str] = (),
):
    """Greedy completions (each ended by EOS, a ``stop`` string or ``max_new_tokens``) and a 0/1 verdict for each
    example."""
    task.use_tokenizer(tokenizer)  # chat prompts are rendered by its chat template
    params = SamplingSection(temperature=0.0, max_new_tokens=max_new_tokens, batch_size=batch_size, stop=list(stop))
    out = generate(model, tokenizer, [task.prompt(ex) for ex in examples], params)
    return out, [float(correct) for correct in check(task, out.texts, examples)]


def check(task: Task, completions: list[str], examples: list[Example]) -> list[bool]:
    """The task's verdicts in one batch (code tasks: in the sandbox, installed here on first use)."""
    task_verifier(task)
    return task.check_many(completions, examples)


def greedy_accuracy(model: PreTrainedModel, tokenizer, task: Task, examples: list[Example], **settings: Any) -> float:
    """The share of ``examples`` answered right by greedy decoding; ``settings`` as :func:`greedy_answers` takes
    them (max_new_tokens, batch_size, stop)."""
    _, correct = greedy_answers(model, tokenizer, task, examples, **settings)
    return sum(correct) / max(len(examples), 1)


def evaluate(
    model: PreTrainedModel,
    tokenizer,
    task: Task,
    settings: EvalSection,
    seed: int = 0,
    samples_path: str | Path | None = None,
) -> EvalResult:
    examples = task.split(settings.split)[: settings.num_problems]
    task.use_tokenizer(tokenizer)
    prompts = [task.prompt(ex) for ex in examples]
    greedy, greedy_correct = greedy_answers(
        model, tokenizer, task, examples, settings.max_new_tokens, settings.batch_size, settings.stop
    )

    sampled = generate(
        model,
        tokenizer,
        [p for p in prompts for _ in range(settings.k)],
        SamplingSection(
            temperature=settings.temperature,
            max_new_tokens=settings.max_new_tokens,
            batch_size=settings.batch_size,
            stop=settings.stop,
        ),
        seed=seed,
    )
    sample_correct = check(task, sampled.texts, [examples[i // settings.k] for i in range(len(sampled.texts))])
    per_problem = [sum(sample_correct[i * settings.k : (i + 1) * settings.k]) for i in range(len(examples))]
    ks = sorted({1, settings.k} | {k for k in (2, 4, 8, 16) if k <= settings.k})
    pass_k = {k: sum(pass_at_k(settings.k, c, k) for c in per_problem) / len(examples) for k in ks}
    accuracy, ci = mean_ci95(greedy_correct)
    truncated = sum(r == "length" for r in greedy.finish_reasons) / len(examples)

    if samples_path is not None:
        with Path(samples_path).open("w") as handle:
            for i, ex in enumerate(examples):
                row = {
                    "prompt": prompts[i],
                    "answer": ex.answer,
                    "greedy": greedy.texts[i],
                    "greedy_correct": bool(greedy_correct[i]),
                    "samples": sampled.texts[i * settings.k : (i + 1) * settings.k],
                    "samples_correct": per_problem[i],
                }
                handle.write(json.dumps(row) + "\n")
    return EvalResult(
        split=settings.split,
        num_problems=len(examples),
        greedy_accuracy=accuracy,
        greedy_accuracy_ci95=ci,
        k=settings.k,
        pass_at_k=pass_k,
        sample_accuracy=sum(sample_correct) / len(sample_correct),
        truncated_fraction=truncated,
    )


def greedy_verdicts(samples_path: str | Path) -> list[float]:
    """Per-problem greedy correctness (1/0) from an evaluation's ``samples.jsonl``, in problem order."""
    lines = Path(samples_path).read_text().splitlines()
    return [float(json.loads(line)["greedy_correct"]) for line in lines if line.strip()]


def save_result(result: EvalResult, path: str | Path) -> None:
    Path(path).write_text(json.dumps(asdict(result), indent=2))
