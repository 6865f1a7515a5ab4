"""The main job over several seeds and torch thread counts: what SFT, RL and equal-time SFT reach.

Runs ``redraft run`` once per (seed, threads) into ``runs/<prefix>-s<seed>-t<threads>`` (a finished
run is reused, an unfinished one resumed) and prints JSON: each run's greedy test accuracy per
model, RL's paired gain over SFT and over SFT continued for the same wall-clock, and the mean ± sd
over runs. Run it alone on the machine: the job's wall time is part of what it reports.

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
    runs = {}
    for seed in args.seeds:
        for threads in args.threads:
            name = f"{args.prefix}-s{seed}-t{threads}"
            runs[name] = summarize(run_job(name, seed, threads, args.overrides, args.output_dir))
    models = sorted({m for row in runs.values() for m in row["greedy"]})
    overall = {f"greedy_{m}": spread([row["greedy"][m] for row in runs.values() if m in row["greedy"]]) for m in models}
    for key in COMPARISONS:
        gains = [row[key]["mean"] for row in runs.values() if key in row]
        if gains:
            overall[key] = spread(gains)
    overall["minutes"] = spread([row["minutes"] for row in runs.values()])
    print(json.dumps({"runs": runs, "over_runs": overall}, indent=2))


if __name__ == "__main__":
    main()
