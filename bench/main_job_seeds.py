"""The main job over several seeds and torch thread counts: what SFT, RL and equal-time SFT reach.

Runs ``redraft run`` once per (seed, threads) into ``runs/<prefix>-s<seed>-t<threads>`` (a finished
run is reused, an unfinished one resumed) and prints JSON: each run's greedy test accuracy per
model, RL's paired gain over SFT and over SFT continued for the same wall-clock, and the mean ± sd
over runs. Run it alone on the machine: the job's wall time is part of what it reports.

The JSON's ``targets`` checks the project's learning targets on these runs (``learning_targets``):
SFT's spread over runs, RL's lift over SFT and, where the runs end with the SCoRe stage, SCoRe's
targets on the self-correction means (that seeds table is under ``self_correction_table``).

    python bench/main_job_seeds.py --seeds 0 1 2 --threads 2      # RL's gain over 3 seeds
    python bench/main_job_seeds.py --seeds 0 --threads 1 2 --set rl.iterations=0 --set score.enabled=false
                                                                   # SFT across floating-point orders
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from redraft.pipeline import stage_gains
from redraft.score import SINGLE_ATTEMPT, results_of, seeds_table

METRICS = ("acc@t1", "acc@t2", "delta", "delta_c2i")  # the self-correction metrics the targets read
COMPARISONS = {"rl_over_sft": "RL over SFT", "rl_over_sft_same_time": "RL over SFT continued for the same wall-clock"}


def run_job(name: str, seed: int, threads: int, overrides: list[str], output_dir: str) -> Path:
    run_dir = Path(output_dir) / name
    if not (run_dir / "report.md").is_file():
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        args = [
            sys.executable,
            "-m",
            "redraft",
            "run",
            "--name",
            name,
            "--set",
            f"run.seed={seed}",
            "--set",
            f"run.output_dir={output_dir}",
            "--set",
            "logging.progress=false",
        ]
        args += [item for override in overrides for item in ("--set", override)]
        if run_dir.exists():
            args.append("--resume")
        subprocess.run(args, check=True, env=env)
    return run_dir


def summarize(run_dir: Path) -> dict:
    evals = {
        p.name: json.loads((p / "eval.json").read_text())
        for p in sorted((run_dir / "eval").iterdir())
        if (p / "eval.json").is_file()
    }
    gains = stage_gains(run_dir, list(evals))
    row = {
        "greedy": {name: result["greedy_accuracy"] for name, result in evals.items()},
        "pass@1": {name: result["pass_at_k"]["1"] for name, result in evals.items()},
        "minutes": json.loads((run_dir / "timing.json").read_text())["main_job_seconds"] / 60,
    }
    for key, label in COMPARISONS.items():
        if label in gains:
            mean, ci = gains[label]
            row[key] = {"mean": mean, "ci95": ci}
    score = run_dir / "score" / "score.json"
    if score.is_file():
        evaluations = json.loads(score.read_text())["evaluations"]
        row["self_correction"] = {
            m: e["test"]["metrics"] for m, e in evaluations.items() if "metrics" in e.get("test", {})
        }
    return row


def self_correction_means(score_summaries: dict[str, dict], key: str = "test") -> dict[str, dict[str, float]]:
    """Each method's mean over the runs of every self-correction metric, in points: the means of the
    seeds table (``redraft.score.seeds_table``), for the methods evaluated in every run."""
    per_run = [results_of(summary["evaluations"], key) for summary in score_summaries.values()]
    methods = [m for m in per_run[0] if all(m in results for results in per_run)]
    return {
        m: {c: statistics.mean(100 * results[m].metrics[c] for results in per_run) for c in METRICS} for m in methods
    }


def _target(text: str, value: float, met: bool) -> dict:
    return {"target": text, "value": round(value, 2), "met": bool(met)}


def learning_targets(runs: dict[str, dict], score_summaries: dict[str, dict] | None = None) -> list[dict]:
    """The learning targets checked on these runs, each ``{"target", "value", "met"}`` (values in points).

    ``runs``: each run's ``summarize`` row (``greedy`` accuracies per model, ``rl_over_sft`` with its
    paired ``mean`` and ``ci95``); ``score_summaries``: each run's ``score/score.json``, given only when
    every run has one. A target whose inputs are missing (one run, RL or SCoRe not run) is left out.
    """
    targets = []
    sft = [100 * row["greedy"]["sft"] for row in runs.values() if "sft" in row.get("greedy", {})]
    if len(sft) > 1:
        spread_points = max(sft) - min(sft)
        text = f"SFT greedy test accuracy within 5 points over the {len(sft)} runs (range {spread_points:.1f})"
        targets.append(_target(text, spread_points, spread_points <= 5))
    gains = [row.get("rl_over_sft") for row in runs.values()]
    if gains and all(gains):
        lift = statistics.mean(100 * gain["mean"] for gain in gains)
        each = ", ".join(f"{100 * gain['mean']:+.1f} ± {100 * gain['ci95']:.1f}" for gain in gains)
        ci_excludes_zero = all(gain["mean"] - gain["ci95"] > 0 for gain in gains)
        text = f"RL − SFT greedy ≥ +10 points with every run's paired CI excluding 0 ({lift:+.1f}; per run {each})"
        targets.append(_target(text, lift, lift >= 10 and ci_excludes_zero))
    if score_summaries:
        targets += score_targets(score_summaries)
    minutes = [row["minutes"] for row in runs.values() if "minutes" in row]
    if minutes:
        text = f"each job within 15 minutes on this machine (longest {max(minutes):.1f})"
        targets.append(_target(text, max(minutes), max(minutes) <= 15))
    return targets


def score_targets(score_summaries: dict[str, dict], key: str = "test") -> list[dict]:
    """SCoRe's learning targets on the means over the runs of the self-correction metrics (the SFT
    model is the ``prompting`` row's attempt 1); none when SCoRe was not evaluated in every run."""
    means = self_correction_means(score_summaries, key)
    if "score" not in means:
        return []
    score = means["score"]
    deltas = [results_of(summary["evaluations"], key)["score"] for summary in score_summaries.values()]
    ci_excludes_zero = all(r.metrics["delta"] - r.ci95["delta"] > 0 for r in deltas)
    targets = [
        _target(
            f"SCoRe Δ ≥ +5 with every run's CI excluding 0 (Δ {score['delta']:+.1f})",
            score["delta"],
            score["delta"] >= 5 and ci_excludes_zero,
        ),
        _target(f"SCoRe Δ^{{c→i}} ≤ 2 ({score['delta_c2i']:.1f})", score["delta_c2i"], score["delta_c2i"] <= 2),
    ]
    if "prompting" in means:
        sft = means["prompting"]["acc@t1"]
        text = f"SCoRe Acc@t1 ≥ SFT's − 2 ({score['acc@t1']:.1f} vs SFT {sft:.1f})"
        targets.append(_target(text, score["acc@t1"] - sft, score["acc@t1"] >= sft - 2))
    others = {m: v["delta"] for m, v in means.items() if m != "score" and m not in SINGLE_ATTEMPT}
    if others:
        best = max(others, key=others.get)
        text = f"SCoRe Δ above every baseline's (best other: {best} {others[best]:+.1f})"
        targets.append(_target(text, score["delta"] - others[best], score["delta"] > others[best]))
    if "control" in means:
        control = means["control"]["acc@t1"]
        text = f"SCoRe Acc@t2 above the single-attempt control's Acc@t1 ({score['acc@t2']:.1f} vs {control:.1f})"
        targets.append(_target(text, score["acc@t2"] - control, score["acc@t2"] > control))
    return targets


def spread(values: list[float]) -> dict:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[2], help="torch threads (the floating-point order)")
    parser.add_argument("--prefix", default="seeds", help="run names: <prefix>-s<seed>-t<threads>")
    parser.add_argument("--output-dir", default="runs")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], help="a config override, as in redraft run"
    )
    args = parser.parse_args()
    runs, score_summaries = {}, {}
    for seed in args.seeds:
        for threads in args.threads:
            name = f"{args.prefix}-s{seed}-t{threads}"
            run_dir = run_job(name, seed, threads, args.overrides, args.output_dir)
            runs[name] = summarize(run_dir)
            if (run_dir / "score" / "score.json").is_file():
                score_summaries[name] = json.loads((run_dir / "score" / "score.json").read_text())
    models = sorted({m for row in runs.values() for m in row["greedy"]})
    overall = {f"greedy_{m}": spread([row["greedy"][m] for row in runs.values() if m in row["greedy"]]) for m in models}
    for key in COMPARISONS:
        gains = [row[key]["mean"] for row in runs.values() if key in row]
        if gains:
            overall[key] = spread(gains)
    overall["minutes"] = spread([row["minutes"] for row in runs.values()])
    if len(score_summaries) < len(runs):  # SCoRe's targets are over every run or none
        score_summaries = {}
    output = {"runs": runs, "over_runs": overall, "targets": learning_targets(runs, score_summaries)}
    if score_summaries and self_correction_means(score_summaries):
        output["self_correction_table"] = seeds_table(score_summaries)
    print(json.dumps(output, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
