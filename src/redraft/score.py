"""The SCoRe job (`redraft score`, and the main job's last stage): from a single-attempt SFT model,
Pair-SFT → Stage I → Stage II, the baselines, and their self-correction table.

Methods (rows of the table), all evaluated with the same protocol, decoding and token budget:

- prompting: the SFT model asked twice, never trained on the two-attempt format
- pair_sft: SFT on the model's own drafts followed by the correct answer (the base of every RL run)
- star: fine-tuned on its own successful corrections, a few rounds, each sampled with the last round's
  model and trained from pair_sft afresh (the SFT model alone cannot produce the two-attempt format
  to sample corrections from)
- single_turn_rl: RL on attempt 1 only (from pair_sft)
- multiturn_rl: RL rewarding attempt 2 with one score for the whole episode (from pair_sft)
- control: the SFT model + single-turn RL for the wall-clock time SCoRe's pipeline took
- score: pair_sft → Stage I → Stage II

Each sub-stage writes ``result.json`` when done, so an interrupted job resumes where it stopped.
Hyper-parameters are meant to be chosen on the validation split (``val`` metrics per method).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from redraft.config import ScoreConfig
from redraft.data.sequences import TokenizedData
from redraft.distributed import on_main_process
from redraft.errors import RedraftError
from redraft.evaluation.self_correction import (
    ScalingResult,
    SelfCorrectionResult,
    evaluate_self_correction,
    inference_scaling,
)
from redraft.fsutil import write_json_atomic
from redraft.models import default_device, load_model
from redraft.run_folder import finish_stage, main_process_stage, stage_result
from redraft.tasks import Task, build_task
from redraft.text.tokenizer import load_tokenizer
from redraft.training.lm import Anchor, ValMetricsFn, train_lm
from redraft.training.logging import MetricsLog
from redraft.training.rl import train_rl
from redraft.training.score import (
    draft_is_right,
    episodes_to_sft,
    first_attempt,
    first_attempt_correct_or_later,
    pair_sft_episodes,
    rebalance_wrong_drafts,
    stage_credit,
    star_episodes,
    train_self_correction_rl,
)

# Methods trained for one attempt only: reports show their Acc@t1 and nothing of later attempts.
SINGLE_ATTEMPT = ("control",)
CHECK_METRICS = ("acc@t1", "acc@t2", "delta", "delta_i2c", "delta_c2i", "changed")


def _sft_stage(
    name: str,
    model_path: str,
    data: TokenizedData,
    val: TokenizedData | None,
    train_cfg,
    cfg: ScoreConfig,
    out_dir: Path,
    log: MetricsLog,
    resume: bool,
    tokenizer,
    val_metrics: ValMetricsFn | None = None,
    anchor: Anchor | None = None,
) -> dict[str, Any]:
    set_seed(cfg.run.seed)
    result = train_lm(
        stage=name,
        model=load_model(model_path),
        tokenizer=tokenizer,
        train=data,
        val=val,
        cfg=train_cfg,
        out_dir=out_dir,
        seed=cfg.run.seed,
        log=log,
        logging=cfg.logging,
        resume=resume,
        val_metrics=val_metrics,
        anchor=anchor,
    )
    return {**asdict(result), "model_dir": str(result.model_dir)}


def _self_correction_check(cfg: ScoreConfig, task: Task, tokenizer) -> ValMetricsFn | None:
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
            max_new_tokens=cfg.score.eval.max_new_tokens,
            seed=cfg.run.seed,
        )
        # "@" would be a poor TensorBoard tag: acc@t1 is logged as val_acc_t1
        return {f"val_{name.replace('@', '_')}": result.metrics[name] for name in CHECK_METRICS}

    return check


def _pair_sft(
    cfg: ScoreConfig,
    task: Task,
    tokenizer,
    out_dir: Path,
    log: MetricsLog,
    resume: bool,
) -> dict[str, Any]:
    started = time.perf_counter()
    s = cfg.score
    base = load_model(cfg.model.path).to(default_device())
    max_new = s.rl.max_new_tokens

    def drafts(examples, seed, drafts_per_problem):
        return pair_sft_episodes(
            base,
            tokenizer,
            task,
            examples,
            s.protocol,
            s.draft_temperature,
            max_new,
            seed,
            drafts_per_problem,
        )

    anchored = s.pair_sft_anchor > 0

    def rows(episodes) -> TokenizedData:
        return episodes_to_sft(
            episodes,
            first_attempt_correct_or_later,
            tokenizer.pad_token_id,
            s.pair_sft.max_length,
            anchored=first_attempt if anchored else None,
        )

    episodes = drafts(task.demonstration_examples, cfg.run.seed, s.drafts_per_problem)
    mix = {"draft_wrong_share": sum(not draft_is_right(e) for e in episodes) / len(episodes)}
    if s.wrong_draft_share is not None:
        episodes = rebalance_wrong_drafts(episodes, s.wrong_draft_share, cfg.run.seed)
    mix["train_rows"] = len(episodes)
    # Validation keeps one draft per problem in the drafts' own mix, so its loss reads the same
    # whatever drafts_per_problem and wrong_draft_share are.
    train = rows(episodes)
    val = rows(drafts(task.val, cfg.run.seed + 1, 1)) if task.val else None
    result = _sft_stage(
        "pair_sft",
        cfg.model.path,
        train,
        val,
        s.pair_sft,
        cfg,
        out_dir,
        log,
        resume,
        tokenizer,
        val_metrics=_self_correction_check(cfg, task, tokenizer),
        anchor=Anchor(base, s.pair_sft_anchor) if anchored else None,
    )
    return {**result, **mix, "seconds": time.perf_counter() - started}


def _star(
    cfg: ScoreConfig,
    task: Task,
    tokenizer,
    base: str,
    out_dir: Path,
    log: MetricsLog,
    resume: bool,
) -> dict[str, Any]:
    s = cfg.score
    # As in STaR (Zelikman et al., 2022, Algorithm 1), each round samples with the latest model
    # but fine-tunes the starting model afresh: continuing from the last round compounds its drift.
    sampler, kept = base, []
    started = time.perf_counter()
    for iteration in range(1, s.star_iterations + 1):
        step_dir = out_dir / f"iteration_{iteration}"
        if not (done := stage_result(step_dir)):
            start = (iteration - 1) * s.star_problems
            problems = [task.train[(start + i) % len(task.train)] for i in range(s.star_problems)]
            episodes = star_episodes(
                load_model(sampler).to(default_device()),
                tokenizer,
                task,
                problems,
                s.protocol,
                s.rl.temperature,
                s.rl.max_new_tokens,
                cfg.run.seed + iteration,
            )
            if len(episodes) < s.star.batch_size:
                done = {
                    "model_dir": sampler,
                    "successful_corrections": len(episodes),
                    "skipped": True,
                }
            else:
                data = episodes_to_sft(
                    episodes,
                    lambda _episode, turn: turn > 0,
                    tokenizer.pad_token_id,
                    s.star.max_length,
                )
                done = _sft_stage(
                    f"star_{iteration}",
                    base,
                    data,
                    None,
                    s.star,
                    cfg,
                    step_dir,
                    log,
                    resume,
                    tokenizer,
                )
                done["successful_corrections"] = len(episodes)
            finish_stage(step_dir, done)
        sampler = done["model_dir"]
        kept.append(done["successful_corrections"])
    return {
        "model_dir": sampler,
        "successful_corrections": kept,
        "seconds": time.perf_counter() - started,
    }


def _rl(
    cfg: ScoreConfig,
    task: Task,
    tokenizer,
    out_dir: Path,
    log: MetricsLog,
    resume: bool,
    *,
    stage: str,
    model_path: str,
    iterations: int,
    multi_turn: bool,
    credit=None,
    reward_turns: str = "all",
    reference_path: str | None = None,
    max_seconds: float | None = None,
    first_turn_temperature: float | None = None,
) -> dict[str, Any]:
    s = cfg.score
    rl_cfg = s.rl.model_copy(update={"iterations": iterations, "max_seconds": max_seconds})
    common = {
        "model_path": model_path,
        "tokenizer": tokenizer,
        "task": task,
        "cfg": rl_cfg,
        "out_dir": out_dir,
        "seed": cfg.run.seed,
        "log": log,
        "logging": cfg.logging,
        "resume": resume,
    }
    if not multi_turn:
        return train_rl(**common, stage=stage)
    return train_self_correction_rl(
        **common,
        reference_path=reference_path,
        protocol=s.protocol,
        stage=stage,
        credit=credit,
        reward_turns=reward_turns,
        first_turn_temperature=first_turn_temperature,
    )


def _evaluate(cfg: ScoreConfig, task: Task, model_dir: str, out_dir: Path, scaling: bool) -> dict[str, Any]:
    s = cfg.score
    model, tokenizer = load_model(model_dir).to(default_device()), load_tokenizer(model_dir)
    common = {
        "max_new_tokens": s.eval.max_new_tokens,
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
        "test_sampled_t1": evaluate_self_correction(
            model, tokenizer, task, test, s.protocol, first_temperature=1.0, **common
        ),
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


def run_score(
    cfg: ScoreConfig,
    out_dir: Path,
    log: MetricsLog,
    resume: bool = False,
    task: Task | None = None,
) -> dict[str, Any]:
    """Train SCoRe and the configured baselines from ``cfg.model.path``; evaluate all of them.

    Returns ``{"stages": {name: result}, "evaluations": {method: {...}}}`` and writes it to
    ``out_dir/score.json``.
    """
    if not cfg.model.path:
        raise RedraftError("score needs model.path (a single-attempt SFT checkpoint; use --model PATH)")
    s = cfg.score
    task = task or build_task(cfg.task)
    tokenizer = load_tokenizer(cfg.model.path)
    task.use_tokenizer(tokenizer)  # chat prompts are rendered by its chat template
    out_dir.mkdir(parents=True, exist_ok=True)
    stages: dict[str, dict[str, Any]] = {}

    def stage(name: str, train) -> dict[str, Any]:
        stage_dir = out_dir / name
        if not (done := stage_result(stage_dir)):
            done = finish_stage(stage_dir, train(stage_dir))
        stages[name] = done
        return done

    pair = stage("pair_sft", lambda d: _pair_sft(cfg, task, tokenizer, d, log, resume))
    base = pair["model_dir"]
    rl = {
        "cfg": cfg,
        "task": task,
        "tokenizer": tokenizer,
        "log": log,
        "resume": resume,
    }
    stage1 = stage(
        "stage1",
        lambda d: _rl(
            **rl,
            out_dir=d,
            stage="score_stage1",
            model_path=base,
            reference_path=base,
            iterations=s.stage1_iterations,
            multi_turn=True,
            credit=stage_credit(1, s.protocol.attempts, s.alpha, s.beta1, s.beta2),
            first_turn_temperature=s.stage1_first_temperature,
        ),
    )
    stage2 = stage(
        "stage2",
        lambda d: _rl(
            **rl,
            out_dir=d,
            stage="score_stage2",
            model_path=stage1["model_dir"],
            reference_path=base,
            iterations=s.stage2_iterations,
            multi_turn=True,
            credit=stage_credit(2, s.protocol.attempts, s.alpha, s.beta1, s.beta2),
        ),
    )
    score_seconds = pair["seconds"] + stage1["seconds"] + stage2["seconds"]
    both = s.stage1_iterations + s.stage2_iterations
    models = {"prompting": cfg.model.path, "pair_sft": base}
    if "star" in s.baselines:
        models["star"] = stage("star", lambda d: _star(cfg, task, tokenizer, base, d, log, resume))["model_dir"]
    rl_baselines = {
        "single_turn_rl": {"model_path": base, "iterations": both, "multi_turn": False},
        "multiturn_rl": {
            "model_path": base,
            "iterations": both,
            "multi_turn": True,
            "reward_turns": "last",
        },
        # Iterations are a ceiling only: the wall-clock budget is what stops the control.
        "control": {
            "model_path": cfg.model.path,
            "iterations": 100 * max(both, 1),
            "multi_turn": False,
            "max_seconds": score_seconds,
        },
    }
    for name, settings in rl_baselines.items():
        if name in s.baselines:
            models[name] = stage(
                name,
                lambda d, name=name, settings=settings: _rl(**rl, out_dir=d, stage=name, **settings),
            )["model_dir"]
    models = {name: path for name, path in models.items() if name in s.baselines}
    models["score"] = stage2["model_dir"]

    evaluations = {}
    for method, model_dir in models.items():
        eval_dir = out_dir / "eval" / method
        evaluations[method] = main_process_stage(
            eval_dir,
            lambda model_dir=model_dir, eval_dir=eval_dir, method=method: _evaluate(
                cfg, task, model_dir, eval_dir, scaling=method in ("score", "pair_sft")
            ),
        )
    summary = {
        "stages": stages,
        "evaluations": evaluations,
        "score_pipeline_seconds": score_seconds,
    }
    on_main_process(lambda: write_json_atomic(out_dir / "score.json", summary))
    return summary


def results_of(evaluations: dict[str, Any], key: str = "test") -> dict[str, SelfCorrectionResult]:
    return {method: SelfCorrectionResult(**ev[key]) for method, ev in evaluations.items() if ev.get(key)}


def scaling_of(evaluations: dict[str, Any]) -> dict[str, ScalingResult]:
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
    from redraft.evaluation.self_correction import render_self_correction_section

    evaluations = summary["evaluations"]
    scaling = scaling_of(evaluations)
    lines = [
        render_self_correction_section(results_of(evaluations), scaling, heading=heading, single_attempt=SINGLE_ATTEMPT)
    ]
    for key, title in (
        ("test_sampled_t1", "### Attempt 1 sampled (T = 1), attempt 2 greedy"),
        ("val", "### Validation split (for choosing hyper-parameters)"),
    ):
        section = render_self_correction_section(
            results_of(evaluations, key), None, heading=title, single_attempt=SINGLE_ATTEMPT
        )
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
        "single-attempt control's wall-clock budget.\n"
    )
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
    columns = ("acc@t1", "acc@t2", "delta", "delta_i2c", "delta_c2i", "changed")
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
        for column in columns:
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
