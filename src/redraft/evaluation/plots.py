"""PNG plots of a run's metrics (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    points = [(r["step"], r[key]) for r in records if key in r]
    return [p[0] for p in points], [p[1] for p in points]


def plot_losses(records: list[dict[str, Any]], stages: list[str], path: str | Path) -> Path:
    """One panel per stage: training loss and validation loss against optimizer step."""
    fig, axes = plt.subplots(1, len(stages), figsize=(5 * len(stages), 3.6), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        stage_records = [r for r in records if r["stage"] == stage]
        for key, style in (("loss", "-"), ("val_loss", "o-")):
            steps, values = _series(stage_records, key)
            if steps:
                ax.plot(steps, values, style, label=key.replace("_", " "), markersize=3)
        ax.set_title(stage)
        ax.set_xlabel("step")
        ax.set_ylabel("loss (nats/token)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_accuracy(records: list[dict[str, Any]], stage: str, final: dict[str, float], path: str | Path) -> Path:
    """Validation greedy accuracy during ``stage`` and the final test metrics as bars."""
    fig, (curve, bars) = plt.subplots(1, 2, figsize=(10, 3.6))
    steps, values = _series([r for r in records if r["stage"] == stage], "val_accuracy")
    curve.plot(steps, [100 * v for v in values], "o-", markersize=3)
    curve.set_title(f"{stage}: greedy accuracy on validation problems")
    curve.set_xlabel("step")
    curve.set_ylabel("accuracy (%)")
    curve.set_ylim(0, 100)
    curve.grid(alpha=0.3)
    names = list(final)
    heights = [100 * final[n] for n in names]
    palette = ["#4c72b0", "#a1c9f4", "#dd8452", "#ffb482", "#55a868", "#8de5a1"]
    bars.bar(names, heights, color=palette[: len(names)])
    for i, h in enumerate(heights):
        bars.text(i, h + 1, f"{h:.1f}", ha="center")
    bars.set_ylim(0, 105)
    bars.set_title("test split")
    bars.set_ylabel("%")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_rl(records: list[dict[str, Any]], path: str | Path) -> Path:
    """RL curves: reward and training accuracy, KL to the reference, validation greedy accuracy."""
    rl = [r for r in records if r["stage"] == "rl"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    steps, values = _series(rl, "reward")
    window = max(1, len(values) // 10)
    smoothed = [
        sum(values[max(0, i - window + 1) : i + 1]) / len(values[max(0, i - window + 1) : i + 1])
        for i in range(len(values))
    ]
    axes[0].plot(steps, values, alpha=0.35, label="per iteration")
    axes[0].plot(steps, smoothed, label=f"mean of last {window}")
    axes[0].set_title("rollout reward (task checker)")
    # KL to the reference is measured only when used (or rl.log_reference_kl); the update's own KL always is.
    to_reference = any("kl" in r for r in rl)
    steps, values = _series(rl, "kl" if to_reference else "approx_kl")
    axes[1].plot(steps, values, color="#c44e52")
    axes[1].set_title("KL to reference (per sequence)" if to_reference else "KL(sampling ‖ updated policy) per token")
    steps, values = _series(rl, "val_accuracy")
    axes[2].plot(steps, [100 * v for v in values], "o-", markersize=3, color="#55a868")
    axes[2].set_title("greedy accuracy on validation problems (%)")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


# Self-correction training curves: panel title → (key, label) pairs the SCoRe trainer may log.
# The RL stages log their sampled episodes; Pair-SFT logs greedy validation checks (val_*).
SELF_CORRECTION_PANELS = {
    "checker accuracy (%)": (
        ("accuracy_t1", "attempt 1"),
        ("accuracy_t2", "attempt 2"),
        ("val_acc_t1", "attempt 1, greedy val"),
        ("val_acc_t2", "attempt 2, greedy val"),
    ),
    "mean reward": (("reward_t1", "attempt 1"), ("reward_t2", "attempt 2")),
    "Δ = acc t2 − acc t1 (points)": (("delta", "Δ"), ("val_delta", "Δ, greedy val")),
    "KL to reference (per sequence)": (("kl_t1", "attempt 1"), ("kl_t2", "attempt 2")),
}
PERCENT_KEYS = {"accuracy_t1", "accuracy_t2", "delta", "val_acc_t1", "val_acc_t2", "val_delta"}
PANEL_KEYS = {key for series in SELF_CORRECTION_PANELS.values() for key, _ in series}


def self_correction_stages(records: list[dict[str, Any]], candidates: Iterable[str]) -> list[str]:
    """The candidates that logged at least one self-correction curve (Pair-SFT only when its checks ran)."""
    return [stage for stage in candidates if any(r["stage"] == stage and PANEL_KEYS & r.keys() for r in records)]


def plot_self_correction(records: list[dict[str, Any]], stages: list[str], path: str | Path) -> Path:
    """One row per stage, one column per logged quantity (attempt accuracies, rewards, Δ, KL) per iteration.

    Columns whose keys no stage logged are left out, so baselines that log a subset still plot.
    """
    by_stage = {stage: [r for r in records if r["stage"] == stage] for stage in stages}
    panels = {
        title: series
        for title, series in SELF_CORRECTION_PANELS.items()
        if any(key in r for key, _ in series for rs in by_stage.values() for r in rs)
    }
    if not panels:
        raise ValueError(f"no self-correction metrics logged for stages {stages}")
    fig, axes = plt.subplots(len(stages), len(panels), figsize=(4.2 * len(panels), 3.2 * len(stages)), squeeze=False)
    for row, stage in zip(axes, stages):
        for ax, (title, series) in zip(row, panels.items()):
            for key, label in series:
                steps, values = _series(by_stage[stage], key)
                if steps:
                    scale = 100 if key in PERCENT_KEYS else 1
                    ax.plot(steps, [scale * v for v in values], label=label)
            ax.set_title(f"{stage}: {title}", fontsize=9)
            if not ax.lines:
                ax.set_axis_off()
                ax.text(
                    0.5, 0.5, "not logged by this stage", ha="center", va="center", color="grey", transform=ax.transAxes
                )
                continue
            if title.startswith("Δ"):
                ax.axhline(0, color="grey", linewidth=0.8)
            ax.set_xlabel("step" if stage == "pair_sft" else "iteration")
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0] and len(series) > 1:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def plot_inference_scaling(results: dict[str, Any], path: str | Path) -> Path:
    """Majority-vote accuracy against generations per problem: parallel sampling vs sample-then-self-correct.

    ``results`` maps a model name to a :class:`~redraft.evaluation.self_correction.ScalingResult`.
    """
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for color, (name, result) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], results.items()):
        prefix = f"{name}: " if len(results) > 1 else ""
        for values, cis, style, label in (
            (result.parallel, result.parallel_ci95, "o--", "B samples + vote"),
            (result.self_correct, result.self_correct_ci95, "s-", "B/2 samples, self-corrected + vote"),
        ):
            ax.errorbar(
                result.budgets,
                [100 * v for v in values],
                yerr=[100 * c for c in cis],
                fmt=style,
                color=color,
                capsize=3,
                markersize=4,
                label=prefix + label,
            )
    ax.set_xscale("log", base=2)
    budgets = sorted({b for result in results.values() for b in result.budgets})
    ax.set_xticks(budgets, [str(b) for b in budgets])
    ax.set_xlabel("generations per problem (B)")
    ax.set_ylabel("majority-vote accuracy (%)")
    ax.set_title("inference-time scaling")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
