"""A readable Markdown report per run."""

from __future__ import annotations

import json
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
    result: EvalResult,
    seconds: float,
    plots: list[str],
) -> Path:
    lines = [
        f"# redraft run `{cfg.run.name}`",
        "",
        f"- task: `{task.name}` — {len(task.train)} train / {len(task.val)} val / {len(task.test)} test problems, "
        f"prompt template `{cfg.task.template}`",
        f"- model: {cfg.model.arch} preset `{cfg.model.preset}`, {stages['pretrain'].get('parameters', '?'):,} parameters",
        f"- seed: {cfg.run.seed}; main job wall time: **{seconds / 60:.1f} min**",
        "",
        "## Stages",
        "",
        "| stage | steps | time (s) | final train loss | best val loss | early stop |",
        "|---|---|---|---|---|---|",
    ]
    for name, stage in stages.items():
        lines.append(
            f"| {name} | {stage['steps']} | {stage['seconds']:.0f} | {_fmt(stage['train_loss'])} | "
            f"{_fmt(stage['best_val_loss'])} | {'yes' if stage['stopped_early'] else 'no'} |"
        )
    pass_rows = " | ".join(f"{100 * v:.1f}" for v in result.pass_at_k.values())
    pass_heads = " | ".join(f"pass@{k} (%)" for k in result.pass_at_k)
    lines += [
        "",
        f"## Evaluation ({result.split} split, {result.num_problems} problems)",
        "",
        f"Greedy accuracy and pass@k from {result.k} samples per problem at temperature {cfg.eval.temperature}.",
        "",
        f"| greedy accuracy (%) | {pass_heads} | truncated (%) |",
        "|---" * (2 + len(result.pass_at_k)) + "|",
        f"| {100 * result.greedy_accuracy:.1f} ± {100 * result.greedy_accuracy_ci95:.1f} | {pass_rows} | "
        f"{100 * result.truncated_fraction:.1f} |",
        "",
        "The gap between greedy accuracy and pass@k is the headroom a later RL stage can claim.",
        "",
        "## Plots",
        "",
        *[f"![{p}]({p})" for p in plots],
        "",
    ]
    samples_path = run_dir / "eval" / "samples.jsonl"
    if samples_path.is_file():
        rows = [json.loads(line) for line in samples_path.read_text().splitlines()[:8]]
        lines += ["## Sample greedy answers", "", "| prompt | expected | model | correct |", "|---|---|---|---|"]
        for row in rows:
            model_text = row["greedy"].replace("|", "\\|").replace("\n", "⏎")
            lines.append(f"| `{row['prompt']}` | {row['answer']} | `{model_text}` | {'✓' if row['greedy_correct'] else '✗'} |")
        lines.append("")
    lines += [
        "## Files",
        "",
        "`config.yaml` (the full config), `metrics.jsonl` (every logged metric), `pretrain/model` and",
        "`sft/model` (HF checkpoints: `AutoModelForCausalLM.from_pretrained(path)`), `*/checkpoints/`",
        "(resumable training state), `eval/eval.json` and `eval/samples.jsonl`.",
        "",
    ]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
