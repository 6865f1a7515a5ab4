"""bench/README.md's results tables, rendered from the benchmarks' saved JSON.

A benchmark whose JSON is saved as ``bench/<name>.latest.json`` (one run's JSON, or a list of runs, one table row
each) has its table in bench/README.md between ``<!-- <name> results -->`` and ``<!-- end <name> results -->``.
This script renders each table from its JSON and writes it there, so the README shows what the saved runs measured;
``--check`` changes nothing and exits 1 when a table differs from its JSON (the test suite runs that check).

    python bench/generate.py > distinct.json && python bench/generate.py --samples 8 > grpo.json
    python bench/tables.py --save generate distinct.json grpo.json     # saves, then rewrites every table
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

BENCH = Path(__file__).resolve().parent
README = BENCH / "README.md"


def _num(value: float, digits: int) -> str:
    """``value`` rounded half up, as a reader rounds the JSON's figure (format() rounds 0.285 to 0.28)."""
    rounded = Decimal(str(value)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{rounded:,}"


def _yes(met: bool) -> str:
    return "yes" if met else "no"


def _row(*cells: str) -> str:
    return "|" + "|".join(f" {cell} " if cell else " " for cell in cells) + "|"


def _spread(ratio: dict, unit: str = "") -> str:
    """A median ratio with its min–max over rounds."""
    return f"{_num(ratio['median'], 2)}{unit} ({_num(ratio['min'], 2)}–{_num(ratio['max'], 2)})"


def rl_step_table(result: dict) -> str:
    """GRPO and PPO, redraft against TRL: completions/s, the step against its compute bound, peak RSS."""
    lines = [_row("", "redraft", "TRL", "result", "target", "met"), "|---|---|---|---|---|---|"]
    for algorithm, target in (("grpo", 1.5), ("ppo", 2.0)):
        section = result[algorithm]
        ours, trl, bound = section["ours"], section["trl"], section["compute_bound"]
        name, split = algorithm.upper(), ours["split_s"]
        parts = [f"generate {_num(split['generate'], 2)}"]
        if bound["N_critic"]:  # PPO: the reference and value passes are a real share of the step
            parts.append(f"reference + values {_num(split['logprobs_and_advantages'], 2)}")
        parts.append(f"update {_num(split['update'], 2)}")
        lines += [
            _row(
                f"{name} completions/s",
                _num(ours["completions_per_s"], 1),
                _num(trl["completions_per_s"], 1),
                _spread(section["speedup_vs_trl"], "×"),
                f"≥ {target:g}×",
                _yes(section[f"target_{target:.1f}x_trl_met"]),
            ),
            _row(
                f"{name} step ÷ compute bound",
                f"{_num(ours['mean_step_s'], 2)} s ({', '.join(parts)})",
                f"{_num(trl['mean_step_s'], 2)} s",
                f"{_num(ours['mean_step_s'], 2)} / {_num(bound['bound_s'], 2)} s = "
                f"{_num(bound['ours_step_over_bound'], 2)}×",
                "≤ 1.3×",
                _yes(bound["target_within_1_3x"]),
            ),
            _row(
                f"{name} peak RSS",
                f"{_num(ours['peak_rss_mib'], 0)} MiB",
                f"{_num(trl['peak_rss_mib'], 0)} MiB",
                f"{_num(section['peak_rss_ratio_ours_over_trl'], 2)}×",
                "≤ TRL",
                _yes(section["target_rss_at_most_trl_met"]),
            ),
        ]
    return "\n".join(lines)


def time_to_accuracy_table(result: dict) -> str:
    """Per round, each side's seconds to the gain, seconds for all its steps and its gain at the end; the ratio."""
    gain = f"+{result['gain_points']:g}"
    lines = [
        _row(
            "round (first side)",
            f"redraft: s to {gain} points / all steps / gain at the end",
            f"TRL `GRPOTrainer`: s to {gain} / all steps / gain at the end",
            "TRL ÷ redraft seconds",
        ),
        "|---|---|---|---|",
    ]

    def cell(side: dict) -> str:
        if "error" in side:
            return side["error"]
        reached = f"{_num(side['seconds_to_gain'], 1)} s" if side["seconds_to_gain"] is not None else "not reached"
        return f"{reached} / {_num(side['curve'][-1][0], 1)} s / {side['final_gain_points']:+.1f}"

    for number, sides in enumerate(result["rounds"], start=1):
        ours, trl = sides["redraft"], sides["trl"]
        both = ours.get("seconds_to_gain") and trl.get("seconds_to_gain")
        ratio = _num(trl["seconds_to_gain"] / ours["seconds_to_gain"], 2) if both else "–"
        first = "redraft" if next(iter(sides)) == "redraft" else "TRL"
        lines.append(_row(f"{number} ({first})", cell(ours), cell(trl), ratio))
    median = result.get("trl_over_redraft_seconds")  # absent when no round saw both sides reach the gain
    lines.append(_row("**median (min–max)**", "", "", f"**{_spread(median)}**" if median else "–"))
    return "\n".join(lines)


def main_job_seeds_table(result: dict) -> str:
    """Per run, greedy test accuracy of each stage, SCoRe's two attempts, the control and the job's minutes; then
    the learning targets."""
    names = {name: re.search(r"-s(\d+)-t(\d+)$", name) for name in result["runs"]}
    several_thread_counts = len({found.group(2) for found in names.values() if found}) > 1
    lines = [
        _row(
            "seed", "SFT", "RL", "SFT, RL's wall-clock", "RL − SFT (95% CI)", "SCoRe t1 → t2", "single-attempt control",
            "job",
        ),
        "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip

    def pct(value: float | None) -> str:
        return "–" if value is None else _num(100 * value, 1)

    for name, run in result["runs"].items():
        found = names[name]
        label = name if not found else found.group(1) + (f", {found.group(2)} threads" if several_thread_counts else "")
        greedy, score = run["greedy"], run.get("self_correction", {})
        gain = run.get("rl_over_sft")
        lines.append(
            _row(
                label,
                f"{pct(greedy['sft'])}%",
                f"{pct(greedy.get('rl'))}%",
                f"{pct(greedy.get('sft_same_time'))}%",
                f"{100 * gain['mean']:+.1f} ± {_num(100 * gain['ci95'], 1)}" if gain else "–",
                f"{pct(score['score']['acc@t1'])} → {pct(score['score']['acc@t2'])}" if "score" in score else "–",
                pct(score["control"]["acc@t1"]) if "control" in score else "–",
                f"{_num(run['minutes'], 1)} min",
            )
        )
    lines += ["", _row("target", "value", "met"), "|---|---|---|"]
    lines += [_row(t["target"], f"{t['value']:g}", _yes(t["met"])) for t in result["targets"]]
    return "\n".join(lines)


def _rows(result: dict | list[dict]) -> list[dict]:
    """A saved benchmark: one invocation's JSON, or a list of them (one table row each)."""
    return result if isinstance(result, list) else [result]


def generate_table(result: dict | list[dict]) -> str:
    """Per batch shape: tokens/s of HF generate and redraft's two paths, the speed-up, the decode bound."""
    lines = [
        _row(
            "batch", "HF tok/s", "redraft fast path", "redraft generic path", "fast ÷ HF (min–max)", "decode bound",
            "target ≥ 1.5×",
        ),
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for run in _rows(result):
        samples = run["samples_per_prompt"]
        shape = (
            f"{run['batch']} distinct prompts"
            if samples == 1
            else f"{run['batch'] // samples} prompts × {samples} samples"
        )
        lines.append(
            _row(
                shape,
                _num(run["hf_generate_tokens_per_s"], 0),
                _num(run["redraft_fast_tokens_per_s"], 0),
                _num(run["redraft_hf_backend_tokens_per_s"], 0),
                _spread(run["speedup_fast_vs_hf_generate"]),
                f"{_num(run['decode_bound_s'], 3)} s; fast path {_num(run['fast_over_bound'], 2)}×, HF "
                f"{_num(run['hf_over_bound'], 2)}× of it",
                _yes(run["target_1.5x_hf_met"]),
            )
        )
    return "\n".join(lines)


def train_table(result: dict | list[dict]) -> str:
    """Per model and batch: tokens/s of a bare torch loop and of redraft's trainer, the slowdown, and the compute
    bound: the matmul rate of the model's shapes ÷ 6 FLOPs per weight and token (forward and backward)."""
    lines = [
        _row(
            "preset, batch", "bare torch tok/s", "redraft tok/s", "slowdown (min–max)", "matmul bound tok/s (redraft's "
            "share)", "target ≤ 1.1×",
        ),
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for run in _rows(result):
        precision = "bf16" if run["mixed_precision"] == "bf16" else "fp32"
        bound = run["matmul_gflops_per_s"][precision] * 1e9 / (6 * run["params"])
        label = f"{run['preset']}, {run['batch']}"
        if run["mixed_precision"] != "no":
            label += f", `--mixed-precision {run['mixed_precision']}`"
        if run["rounds"] != 5:
            label += f" ({run['rounds']} rounds)"
        lines.append(
            _row(
                label,
                _num(run["bare_torch_tokens_per_s"], 0),
                _num(run["redraft_tokens_per_s"], 0),
                _spread(run["slowdown"]),
                f"{_num(bound, 0)} ({_num(run['redraft_tokens_per_s'] / bound, 2)})",
                _yes(run["target_within_1.1x_met"]),
            )
        )
    return "\n".join(lines)


TABLES = {
    "main_job_seeds": main_job_seeds_table,
    "generate": generate_table,
    "train": train_table,
    "rl_step": rl_step_table,
    "time_to_accuracy": time_to_accuracy_table,
}


def render(readme: str, bench_dir: Path = BENCH) -> str:
    """``readme`` with every marked table rendered from its ``<name>.latest.json``."""
    for name, table in TABLES.items():
        start, end = f"<!-- {name} results -->", f"<!-- end {name} results -->"
        found = re.search(re.escape(start) + r"\n.*?\n" + re.escape(end), readme, re.DOTALL)
        if not found:
            raise SystemExit(f"bench/README.md has no '{start}' ... '{end}' stretch")
        saved = bench_dir / f"{name}.latest.json"
        if not saved.is_file():
            raise SystemExit(f"bench/README.md has a {name} table but no {saved.name}: --save {name} OUTPUT.json")
        text = table(json.loads(saved.read_text()))
        readme = f"{readme[: found.start()]}{start}\n\n{text}\n\n{end}{readme[found.end() :]}"
    return readme


def bench_output(path: Path) -> dict:
    """A benchmark's printed JSON (lines before it, such as a child run's progress, are skipped)."""
    text = path.read_text()
    if "{" not in text:
        raise SystemExit(f"{path}: no JSON in it")
    return json.loads(text[text.index("{") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from its JSON")
    parser.add_argument(
        "--save",
        choices=sorted(TABLES),
        help="first save the benchmark outputs FILES as bench/<SAVE>.latest.json (several files: one table row each)",
    )
    parser.add_argument("files", nargs="*", type=Path, help="with --save: the benchmark's printed JSON, one per run")
    args = parser.parse_args()
    if args.save:
        if not args.files:
            parser.error("--save needs the benchmark's output files")
        outputs = [bench_output(path) for path in args.files]
        saved = outputs[0] if len(outputs) == 1 else outputs
        (BENCH / f"{args.save}.latest.json").write_text(json.dumps(saved, indent=2) + "\n")
    current = README.read_text()
    rendered = render(current)
    if args.check:
        if rendered != current:
            sys.exit("bench/README.md's tables differ from the saved JSON: run python bench/tables.py")
        return
    README.write_text(rendered)


if __name__ == "__main__":
    main()
