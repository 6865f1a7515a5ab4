"""The SCoRe job's measurements (:mod:`redraft.score`): Pair-SFT's validation check, each method's
evaluations (its entry in ``score.json``), and the job's report from them: the methods' tables (test
split, attempt 1 sampled, validation split), training time and plots; and the table over several runs."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from transformers import PreTrainedModel

from redraft.config import ScoreConfig
from redraft.errors import RedraftError
from redraft.evaluation.self_correction import (
    TABLE_METRICS,
    ScalingResult,
    SelfCorrectionResult,
    evaluate_self_correction,
    inference_scaling,
    render_self_correction_section,
)
from redraft.models import default_device, load_model
from redraft.tasks import Task
from redraft.text.tokenizer import load_tokenizer

# Methods trained for one attempt only: reports show their Acc@t1 and nothing of later attempts.
SINGLE_ATTEMPT = ("control",)
# What Pair-SFT's validation check logs, as training curves.
CHECK_METRICS = ("acc@t1", "acc@t2", "delta", "delta_i2c", "delta_c2i", "changed")


def self_correction_check(
    cfg: ScoreConfig, task: Task, tokenizer
) -> Callable[[PreTrainedModel], dict[str, float]] | None:
    """Greedy two-attempt metrics on the first ``pair_sft.eval_accuracy_problems`` validation problems.

    Pair-SFT's validation loss mixes copying right drafts with fixing wrong ones, so it can fall while
    attempt 2 learns to copy, over-edit or garble; these curves show which one a run is doing.
    """
    problems = task.val[: cfg.score.pair_sft.eval_accuracy_problems]
    if not problems:
        return None

    def check(model) -> dict[str, float]:
        result = evaluate_self_correction(
            model,
            tokenizer,
            task,
            problems,
            cfg.score.protocol,
            max_new_tokens=cfg.score.max_new_tokens,
            stop=cfg.score.stop,
            seed=cfg.run.seed,
        )
        # "@" would be a poor TensorBoard tag: acc@t1 is logged as val_acc_t1
        return {f"val_{name.replace('@', '_')}": result.metrics[name] for name in CHECK_METRICS}

    return check


def evaluate_method(
    cfg: ScoreConfig, task: Task, model_dir: str, out_dir: Path, scaling: bool, single_attempt: bool = False
) -> dict[str, Any]:
    """One method's entry in ``score.json``: self-correction results on the test split (greedy attempt 1, and
    sampled at T = 1 unless ``single_attempt`` or score.eval.sampled_first_attempt is off), on the validation
    split, and (``scaling``) inference-time scaling; samples in ``out_dir``."""
    s = cfg.score
    model, tokenizer = load_model(model_dir, cfg.model.dtype).to(default_device()), load_tokenizer(model_dir)
    common = {
        "max_new_tokens": s.max_new_tokens,
        "stop": s.stop,
        "batch_size": s.eval.batch_size,
        "seed": cfg.run.seed,
    }
    test = task.split(s.eval.split)[: s.eval.num_problems]
    out_dir.mkdir(parents=True, exist_ok=True)
    out = {
        "test": evaluate_self_correction(
            model,
            tokenizer,
            task,
            test,
            s.protocol,
            samples_path=out_dir / "samples.jsonl",
            **common,
        ),
        # A single-attempt method's sampled attempt 1 is pass@1, not a correction: not measured.
        "test_sampled_t1": evaluate_self_correction(
            model, tokenizer, task, test, s.protocol, first_temperature=1.0, **common
        )
        if s.eval.sampled_first_attempt and not single_attempt
        else None,
        "val": evaluate_self_correction(model, tokenizer, task, task.val, s.protocol, **common) if task.val else None,
    }
    if scaling and s.eval.scaling_budgets:
        out["scaling"] = inference_scaling(
            model,
            tokenizer,
            task,
            test,
            s.protocol,
            s.eval.scaling_budgets,
            temperature=s.eval.temperature,
            **common,
        )
    return {key: asdict(value) if value is not None else None for key, value in out.items()}


def results_of(evaluations: dict[str, Any], key: str = "test") -> dict[str, SelfCorrectionResult]:
    """Each method's self-correction result on ``key`` from ``score.json``'s evaluations (those evaluated on it)."""
    return {method: SelfCorrectionResult(**ev[key]) for method, ev in evaluations.items() if ev.get(key)}


def scaling_of(evaluations: dict[str, Any]) -> dict[str, ScalingResult]:
    """Each method's inference-time scaling curves from ``score.json``'s evaluations (those that have them)."""
    return {method: ScalingResult(**ev["scaling"]) for method, ev in evaluations.items() if ev.get("scaling")}


def score_report(
    summary: dict[str, Any],
    records: list[dict[str, Any]],
    out_dir: Path,
    heading: str = "## Self-correction (SCoRe)",
) -> str:
    """Markdown for report.md: the methods' table (test, greedy/greedy), the sampled-attempt-1 variant,
    validation rows, training time per stage, and the training-curve / scaling PNGs (written to ``out_dir``)."""
    from redraft.evaluation.plots import plot_inference_scaling, plot_self_correction, self_correction_stages

    evaluations = summary["evaluations"]
    scaling = scaling_of(evaluations)
    lines = [
        render_self_correction_section(results_of(evaluations), scaling, heading=heading, single_attempt=SINGLE_ATTEMPT)
    ]
    for key, title in (
        ("test_sampled_t1", "### Attempt 1 sampled (T = 1), attempt 2 greedy"),
        ("val", "### Validation split (for choosing hyper-parameters)"),
    ):
        if not (results := results_of(evaluations, key)):
            continue  # not measured (score.eval.sampled_first_attempt off, or no validation split)
        section = render_self_correction_section(results, None, heading=title, single_attempt=SINGLE_ATTEMPT)
        lines.append(section.split("For reference")[0])
    lines += [
        "### Training time",
        "",
        "| stage | seconds | iterations / steps |",
        "|---|---|---|",
    ]
    for name, stage in summary["stages"].items():
        count = stage.get("iterations", stage.get("steps", stage.get("successful_corrections", "")))
        lines.append(f"| {name} | {stage.get('seconds', 0):.0f} | {count} |")
    lines.append(
        f"\nSCoRe pipeline (Pair-SFT + Stage I + Stage II): {summary['score_pipeline_seconds']:.0f} s — the "
        "single-attempt control's wall-clock budget."
    )
    control = summary["stages"].get("control", {})
    if control.get("single_attempt_seconds", 0) > control.get("seconds", 0):
        before = control["single_attempt_seconds"] - control["seconds"]
        lines.append(
            f"The control continued the RL stage's model (`{control['starts_from']}`, {before:.0f} s of single-turn "
            f"RL) for {control['seconds']:.0f} s: {control['single_attempt_seconds']:.0f} s in all."
        )
    lines.append("")
    stages = self_correction_stages(records, ("pair_sft", "score_stage1", "score_stage2", "multiturn_rl"))
    plots = []
    if stages:
        plots.append(plot_self_correction(records, stages, out_dir / "self_correction.png").name)
    if scaling:
        plots.append(plot_inference_scaling(scaling, out_dir / "inference_scaling.png").name)
    lines += [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def seeds_table(summaries: dict[str, dict[str, Any]], key: str = "test") -> str:
    """Markdown over several ``score.json`` summaries (one per seed): each method's mean ± sd of the
    self-correction metrics and each seed's Δ with its 95% CI (measurements only)."""
    per_run = {run: results_of(summary["evaluations"], key) for run, summary in summaries.items()}
    methods = [m for m in next(iter(per_run.values())) if all(m in results for results in per_run.values())]
    if not methods:
        raise RedraftError(f"no method was evaluated on '{key}' in every run")
    lines = [
        (
            f"{len(summaries)} runs ({', '.join(summaries)}), split `{key}`; percent of all problems, "
            "mean ± sd over the runs; the last column is each run's Δ ± its paired 95% CI."
        ),
        "",
        "| method | Acc@t1 | Acc@t2 | Δ | Δ^{i→c} | Δ^{c→i} | changed | Δ per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method in methods:
        results = [per_run[run][method] for run in summaries]
        cells = []
        single = method in SINGLE_ATTEMPT
        for column in TABLE_METRICS:
            values = [100 * r.metrics[column] for r in results]
            mean = statistics.mean(values)
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            if single and column != "acc@t1":
                cells.append("–")
                continue
            cells.append(f"{mean:+.1f} ± {sd:.1f}" if column == "delta" else f"{mean:.1f} ± {sd:.1f}")
        each = (
            "–"
            if single
            else ", ".join(f"{100 * r.metrics['delta']:+.1f} ± {100 * r.ci95['delta']:.1f}" for r in results)
        )
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {each} |")
    return "\n".join(lines) + "\n"
