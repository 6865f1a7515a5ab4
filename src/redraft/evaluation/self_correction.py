"""Measuring intrinsic self-correction (SCoRe): attempt-to-attempt metrics, inference-time scaling, report.

The model answers (attempt 1), sees the fixed correction instruction of
:class:`~redraft.envs.SelfCorrectionEnv` and answers again (attempt 2, ...). With more than two
attempts the metrics (:func:`~redraft.evaluation.metrics.self_correction_metrics`) compare the
first attempt with the last one. Every metric is a mean of one per-problem value, so its 95% CI is
the normal approximation of that mean (:func:`~redraft.evaluation.metrics.mean_ci95`); Δ is
paired: its per-problem value is ``correct_last - correct_first``, which equals ``[i→c] - [c→i]``
problem by problem.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from redraft.config import EvalConfig, SamplingSection, SelfCorrectionSection
from redraft.envs import SelfCorrectionEnv
from redraft.envs.base import Episode
from redraft.errors import RedraftError

# the vote and edit distance live with the other metrics; they stay importable from here too
from redraft.evaluation.metrics import majority_vote as majority_vote
from redraft.evaluation.metrics import normalized_edit_distance as normalized_edit_distance
from redraft.evaluation.metrics import self_correction_metrics, vote_accuracy
from redraft.fsutil import write_json_atomic
from redraft.rollout.episodes import run_episodes
from redraft.tasks.base import Example, Task

# Kumar et al. 2024 (arXiv 2409.12917), Table: MATH500 with Gemini 1.5 Flash, in percent:
# (Acc@t1, Acc@t2, Δ, Δ^{i→c}, Δ^{c→i}). The paper reports no "changed" share.
PAPER_MATH500 = {
    "Base": (52.6, 41.4, -11.2, 4.6, 15.8),
    "Self-Refine": (52.8, 51.8, -1.0, 3.2, 4.2),
    "STaR (+ correct→correct)": (53.6, 54.0, 0.4, 2.6, 2.2),
    "Pair-SFT": (52.4, 54.2, 1.8, 5.4, 3.6),
    "SCoRe": (60.0, 64.4, 4.4, 5.8, 1.4),
}

# The metrics a table of results shows, one column each.
TABLE_METRICS = ("acc@t1", "acc@t2", "delta", "delta_i2c", "delta_c2i", "changed")


@dataclass
class SelfCorrectionResult:
    num_problems: int
    attempts: int
    first_temperature: float
    metrics: dict[str, float]
    ci95: dict[str, float]
    truncated_fraction: list[float]  # per attempt: replies cut at max_new_tokens (they score 0)

    def summary(self) -> dict[str, Any]:
        return {**self.metrics, "num_problems": self.num_problems, "first_temperature": self.first_temperature}


@dataclass
class ScalingResult:
    """Majority-vote accuracy at equal generation budgets: ``budget`` parallel samples vs
    ``budget / 2`` samples each self-corrected once (vote over the corrected answers)."""

    budgets: list[int]
    temperature: float
    parallel: list[float]
    parallel_ci95: list[float]
    self_correct: list[float]
    self_correct_ci95: list[float]
    num_problems: int = 0


@dataclass
class _Attempts:
    """Per-problem, per-attempt record of a batch of self-correction episodes."""

    texts: list[list[str]] = field(default_factory=list)
    answers: list[list[str | None]] = field(default_factory=list)
    correct: list[list[bool]] = field(default_factory=list)
    finish_reasons: list[list[str]] = field(default_factory=list)

    @classmethod
    def of(cls, task: Task, episodes: Sequence[Episode]) -> _Attempts:
        record = cls()
        for episode in episodes:
            record.texts.append([t.reply_text for t in episode.turns])
            record.answers.append([task.extract(t.reply_text) for t in episode.turns])
            record.correct.append([bool(t.info["correct"]) for t in episode.turns])
            record.finish_reasons.append([t.finish_reason for t in episode.turns])
        return record


def _attempt_settings(
    first_temperature: float, later_temperature: float, max_new_tokens: int, batch_size: int, stop: Sequence[str] = ()
) -> list[SamplingSection]:
    return [
        SamplingSection(
            temperature=first_temperature, max_new_tokens=max_new_tokens, batch_size=batch_size, stop=list(stop)
        ),
        SamplingSection(
            temperature=later_temperature, max_new_tokens=max_new_tokens, batch_size=batch_size, stop=list(stop)
        ),
    ]


def _run_attempts(
    model,
    tokenizer,
    task: Task,
    examples: Sequence[Example],
    protocol: SelfCorrectionSection,
    attempts: int,
    params: list[SamplingSection],
    seed: int,
) -> _Attempts:
    envs = [SelfCorrectionEnv(task, attempts=attempts, instruction=protocol.instruction) for _ in examples]
    episodes = run_episodes(model, tokenizer, envs, examples, params, torch.Generator().manual_seed(seed))
    return _Attempts.of(task, episodes)


def evaluate_self_correction(
    model: PreTrainedModel,
    tokenizer,
    task: Task,
    examples: Sequence[Example],
    protocol: SelfCorrectionSection,
    *,
    first_temperature: float = 0.0,
    max_new_tokens: int = 16,
    batch_size: int = 512,
    seed: int = 0,
    samples_path: str | Path | None = None,
    stop: Sequence[str] = (),
) -> SelfCorrectionResult:
    """Run ``protocol.attempts`` attempts per problem (attempt 1 at ``first_temperature``, later ones greedy).

    Greedy/greedy is the headline; ``first_temperature=1`` measures correcting sampled first drafts.
    """
    if not examples:
        raise RedraftError("self-correction eval got no problems (check eval.split and eval.num_problems)")
    task.use_tokenizer(tokenizer)
    params = _attempt_settings(first_temperature, 0.0, max_new_tokens, batch_size, stop)
    record = _run_attempts(model, tokenizer, task, examples, protocol, protocol.attempts, params, seed)
    metrics = self_correction_metrics(record.correct, record.answers, record.texts)
    truncated = [
        sum(reasons[turn] == "length" for reasons in record.finish_reasons) / len(examples)
        for turn in range(protocol.attempts)
    ]
    if samples_path is not None:
        with Path(samples_path).open("w") as handle:
            for i, example in enumerate(examples):
                row = {
                    "prompt": task.prompt(example),
                    "answer": example.answer,
                    "attempts": record.texts[i],
                    "extracted": record.answers[i],
                    "correct": record.correct[i],
                    "finish_reasons": record.finish_reasons[i],
                }
                handle.write(json.dumps(row) + "\n")
    return SelfCorrectionResult(
        num_problems=len(examples),
        attempts=protocol.attempts,
        first_temperature=first_temperature,
        metrics={name: value for name, (value, _) in metrics.items()},
        ci95={name: ci for name, (_, ci) in metrics.items()},
        truncated_fraction=truncated,
    )


def inference_scaling(
    model: PreTrainedModel,
    tokenizer,
    task: Task,
    examples: Sequence[Example],
    protocol: SelfCorrectionSection,
    budgets: Sequence[int],
    *,
    temperature: float = 1.0,
    max_new_tokens: int = 16,
    batch_size: int = 512,
    seed: int = 0,
    stop: Sequence[str] = (),
) -> ScalingResult:
    """Both curves of the paper's inference-time scaling comparison, at equal generation budgets.

    ``max(budgets)`` parallel samples and ``max(budgets) / 2`` two-attempt chains (attempt 1 at
    ``temperature``, attempt 2 greedy) are drawn once per problem; a budget uses the first samples /
    chains of those, so the curves are nested and share their randomness.
    """
    if not budgets or any(b < 2 or b % 2 for b in budgets):
        raise ValueError(f"scaling budgets must be even numbers >= 2, got {list(budgets)}")
    budgets = sorted(set(budgets))
    top = budgets[-1]
    task.use_tokenizer(tokenizer)
    params = _attempt_settings(temperature, 0.0, max_new_tokens, batch_size, stop)
    repeated = [ex for ex in examples for _ in range(top)]
    # One attempt of the self-correction env is plain sampling of the task prompt.
    parallel = _run_attempts(model, tokenizer, task, repeated, protocol, 1, params, seed)
    chains = _run_attempts(
        model, tokenizer, task, [ex for ex in examples for _ in range(top // 2)], protocol, 2, params, seed + 1
    )

    def per_problem(values: list[list[Any]], width: int, turn: int) -> list[list[Any]]:
        flat = [v[turn] for v in values]
        return [flat[i * width : (i + 1) * width] for i in range(len(examples))]

    parallel_answers, parallel_correct = per_problem(parallel.answers, top, 0), per_problem(parallel.correct, top, 0)
    final_answers, final_correct = per_problem(chains.answers, top // 2, -1), per_problem(chains.correct, top // 2, -1)
    plain = [vote_accuracy(parallel_answers, parallel_correct, b) for b in budgets]
    corrected = [vote_accuracy(final_answers, final_correct, b // 2) for b in budgets]
    return ScalingResult(
        budgets=budgets,
        temperature=temperature,
        parallel=[v for v, _ in plain],
        parallel_ci95=[c for _, c in plain],
        self_correct=[v for v, _ in corrected],
        self_correct_ci95=[c for _, c in corrected],
        num_problems=len(examples),
    )


def _pct(value: float, ci: float, signed: bool = False) -> str:
    shown = f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"
    return shown if math.isnan(ci) else f"{shown} ± {100 * ci:.1f}"  # NaN: a single problem


def render_self_correction_section(
    results: Mapping[str, SelfCorrectionResult],
    scaling: Mapping[str, ScalingResult] | None = None,
    heading: str = "## Self-correction",
    single_attempt: Collection[str] = (),
) -> str:
    """Markdown: our rows (± 95% CI, percent of all problems), the paper's MATH500 rows, scaling numbers.

    Rows named in ``single_attempt`` (a model never trained on the two-attempt format, such as the
    single-attempt control) show Acc@t1 only: their later attempts measure nothing."""
    columns = TABLE_METRICS
    header = "| method | Acc@t1 | Acc@t2 | Δ(t1,t2) | Δ^{i→c} | Δ^{c→i} | changed |"
    rule = "|---|---|---|---|---|---|---|"
    lines = [heading, ""]
    if results:
        first = next(iter(results.values()))
        lines += [
            (
                f"{first.num_problems} problems, {first.attempts} attempts (first vs last compared); attempt 1 at "
                f"temperature {first.first_temperature:g}, later attempts greedy. Percent of ALL problems, ± 95% CI "
                '(normal approximation; Δ paired per problem). "changed": final answer differs from attempt 1\'s.'
            ),
            "",
            header,
            rule,
        ]
        for name, result in results.items():
            shown = columns[:1] if name in single_attempt else columns
            cells = [_pct(result.metrics[c], result.ci95[c], signed=c == "delta") for c in shown]
            cells += ["–"] * (len(columns) - len(shown))
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        cut = "; ".join(
            f"{name}: "
            + ", ".join(
                f"t{i} {100 * f:.1f}%"
                for i, f in enumerate(result.truncated_fraction[: 1 if name in single_attempt else None], start=1)
            )
            for name, result in results.items()
        )
        lines += ["", f"Replies cut at max_new_tokens (they score 0): {cut}.", ""]
    lines += [
        "For reference, the paper's published numbers (Kumar et al. 2024, **Gemini 1.5 Flash on MATH500** — not our",
        "model or task):",
        "",
        header,
        rule,
    ]
    for name, (t1, t2, delta, i2c, c2i) in PAPER_MATH500.items():
        lines.append(f"| {name} (paper) | {t1:.1f} | {t2:.1f} | {delta:+.1f} | {i2c:.1f} | {c2i:.1f} | – |")
    for name, result in (scaling or {}).items():
        lines += [
            "",
            (
                f"Inference-time scaling ({name}, {result.num_problems} problems, majority vote, "
                f"samples at temperature {result.temperature:g}): B parallel samples vs B/2 samples "
                "each self-corrected once (greedy correction)."
            ),
            "",
            "| generations per problem | " + " | ".join(str(b) for b in result.budgets) + " |",
            "|---" * (len(result.budgets) + 1) + "|",
            "| parallel + vote (%) | "
            + " | ".join(_pct(v, c) for v, c in zip(result.parallel, result.parallel_ci95))
            + " |",
            "| self-correct + vote (%) | "
            + " | ".join(_pct(v, c) for v, c in zip(result.self_correct, result.self_correct_ci95))
            + " |",
        ]
    return "\n".join(lines) + "\n"


def run_self_correction_eval(cfg: EvalConfig, out_dir: Path, task: Task | None = None) -> SelfCorrectionResult:
    """The `redraft eval --self-correct` stage: self_correction.json, samples.jsonl, self_correction.md
    (and inference_scaling.png when ``eval.scaling_budgets`` is set) in ``out_dir``."""
    from redraft.evaluation.plots import plot_inference_scaling
    from redraft.models import default_device, load_model
    from redraft.tasks import build_task
    from redraft.text.tokenizer import load_tokenizer

    if not cfg.model.path:
        raise RedraftError("eval needs model.path (use --model PATH)")
    task = task or build_task(cfg.task)
    model = load_model(cfg.model.path, cfg.model.dtype).to(default_device())
    tokenizer = load_tokenizer(cfg.model.path)
    settings = cfg.eval
    examples = task.split(settings.split)[: settings.num_problems]
    out_dir.mkdir(parents=True, exist_ok=True)
    common = {
        "max_new_tokens": settings.max_new_tokens,
        "batch_size": settings.batch_size,
        "seed": cfg.run.seed,
        "stop": settings.stop,
    }
    result = evaluate_self_correction(
        model,
        tokenizer,
        task,
        examples,
        cfg.self_correction,
        first_temperature=settings.first_temperature,
        samples_path=out_dir / "samples.jsonl",
        **common,
    )
    scaling = {}
    if settings.scaling_budgets:
        scaling["model"] = inference_scaling(
            model,
            tokenizer,
            task,
            examples,
            cfg.self_correction,
            settings.scaling_budgets,
            temperature=settings.temperature,
            **common,
        )
        plot_inference_scaling(scaling, out_dir / "inference_scaling.png")
    write_json_atomic(
        out_dir / "self_correction.json",
        {
            "model": cfg.model.path,
            **asdict(result),
            "scaling": asdict(scaling["model"]) if scaling else None,
        },
    )
    (out_dir / "self_correction.md").write_text(render_self_correction_section({"model": result}, scaling))
    return result
