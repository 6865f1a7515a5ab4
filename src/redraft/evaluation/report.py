"""A readable Markdown report per run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redraft.config import PipelineConfig
from redraft.evaluation.evaluate import EvalResult
from redraft.tasks import Task


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def write_report(
    run_dir: Path,
    *,
    cfg: PipelineConfig,
    task: Task,
    stages: dict[str, dict[str, Any]],
    results: dict[str, EvalResult],
    seconds: float,
    plots: list[str],
    sections: Sequence[str] = (),
    gains: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """``gains`` maps a comparison ("RL over SFT") to its paired accuracy difference and 95% CI half-width."""
    lines = [
        *_overview(cfg, task, stages, seconds),
        *_evaluation(cfg, results),
        *_stage_gains(gains),
        "",
        *sections,
        "",
        "## Plots",
        "",
        *[f"![{p}]({p})" for p in plots],
        "",
        *_sample_answers(run_dir, list(results)[-1]),
        *FILES,
    ]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


def _overview(cfg: PipelineConfig, task: Task, stages: dict[str, dict[str, Any]], seconds: float) -> list[str]:
    """The run's task, model, seed and time, and a row per LM stage (+ the RL stage's line)."""
    lines = [
        f"# redraft run `{cfg.run.name}`",
        "",
        f"- task: `{task.name}` — {len(task.train)} train / {len(task.val)} val / {len(task.test)} test problems, "
        "prompt template `" + task.template.replace("\n", "\\n") + f"`, checked by `{task.match}`",
        f"- model: {cfg.model.arch} preset `{cfg.model.preset}`, {stages['sft'].get('parameters', '?'):,} parameters",
        f"- seed: {cfg.run.seed}; main job wall time: **{seconds / 60:.1f} min**",
        "",
        "## Stages",
        "",
        "| stage | steps | time (s) | final train loss | best val loss | early stop |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("pretrain", "sft", "sft_same_time"):
        stage = stages.get(name)
        if stage is None:
            continue
        lines.append(
            f"| {name} | {stage['steps']} | {stage['seconds']:.0f} | {_fmt(stage['train_loss'])} | "
            f"{_fmt(stage['best_val_loss'])} | {'yes' if stage['stopped_early'] else 'no'} |"
        )
    if "rl" in stages:
        rl = stages["rl"]
        lines += [
            "",
            f"RL: {rl['algorithm']}, {rl['iterations']} iterations of {cfg.rl.prompts_per_iteration} prompts × "
            f"{cfg.rl.samples_per_prompt} samples, {rl['seconds']:.0f} s; reward = the task's checker (1 / 0).",
        ]
    return lines


def _evaluation(cfg: PipelineConfig, results: dict[str, EvalResult]) -> list[str]:
    """Greedy accuracy with its CI, pass@k and truncation per evaluated model."""
    first = next(iter(results.values()))
    ks = list(first.pass_at_k)
    lines = [
        "",
        f"## Evaluation ({first.split} split, {first.num_problems} problems)",
        "",
        (
            f"Greedy accuracy (± 95% CI) and pass@k from {first.k} samples per problem "
            f"at temperature {cfg.eval.temperature}."
        ),
        "",
        "| model | greedy accuracy (%) | " + " | ".join(f"pass@{k} (%)" for k in ks) + " | truncated (%) |",
        "|---" * (3 + len(ks)) + "|",
    ]
    for name, result in results.items():
        lines.append(
            f"| {name} | {100 * result.greedy_accuracy:.1f} ± {100 * result.greedy_accuracy_ci95:.1f} | "
            + " | ".join(f"{100 * result.pass_at_k[k]:.1f}" for k in ks)
            + f" | {100 * result.truncated_fraction:.1f} |"
        )
    return lines


def _stage_gains(gains: dict[str, tuple[float, float]] | None) -> list[str]:
    if not gains:
        return ["", "The gap between greedy accuracy and pass@k is the headroom an RL stage can claim."]
    return [
        "",
        "## What each stage added",
        "",
        "Greedy test accuracy, each change with the 95% CI of the paired per-problem difference "
        "(the same problems, so the interval is narrower than the two accuracies' own).",
        "",
        "| comparison | change (points) | paired 95% CI |",
        "|---|---|---|",
        *[
            f"| {label} | **{100 * mean:+.1f}** | [{100 * (mean - ci):+.1f}, {100 * (mean + ci):+.1f}] |"
            for label, (mean, ci) in gains.items()
        ],
    ]


def _sample_answers(run_dir: Path, model: str) -> list[str]:
    """The first greedy answers of ``model``'s evaluation, when its samples were written."""
    samples_path = run_dir / "eval" / model / "samples.jsonl"
    if not samples_path.is_file():
        return []
    rows = [json.loads(line) for line in samples_path.read_text().splitlines()[:8]]
    lines = [
        f"## Sample greedy answers ({model} model)",
        "",
        "| prompt | expected | model | correct |",
        "|---|---|---|---|",
    ]
    for row in rows:
        model_text = row["greedy"].replace("|", "\\|").replace("\n", "⏎")
        lines.append(
            f"| `{row['prompt']}` | {row['answer']} | `{model_text}` | {'✓' if row['greedy_correct'] else '✗'} |"
        )
    return [*lines, ""]


FILES = [
    "## Files",
    "",
    "`config.yaml` (the full config), `metrics.jsonl` (every logged metric), `pretrain/model` or `tokenizer/`,",
    "`sft/model`, `rl/model`, `sft_same_time/model` (HF checkpoints: `AutoModelForCausalLM.from_pretrained(path)`),",
    "`*/checkpoints/` (resumable training state), `eval/<model>/eval.json` and `samples.jsonl`.",
    "",
]
