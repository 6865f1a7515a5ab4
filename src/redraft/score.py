"""The SCoRe job (`redraft score`, and the main job's last stage): from a single-attempt SFT model,
Pair-SFT → Stage I → Stage II, the baselines (prompting, Pair-SFT, STaR, single-turn and naive multi-turn RL,
the single-attempt control at SCoRe's wall-clock; docs/self-correction.md describes each), and their
self-correction table, every method evaluated with the same protocol, decoding and token budget.

Each sub-stage writes ``result.json`` when done, so an interrupted job resumes where it stopped.
Hyper-parameters are meant to be chosen on the validation split (``val`` metrics per method).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from redraft.algorithms import stage_credit
from redraft.config import ScoreConfig
from redraft.data.sequences import TokenizedData
from redraft.distributed import on_main_process
from redraft.errors import RedraftError
from redraft.evaluation.score import (
    SINGLE_ATTEMPT,
    evaluate_method,
    results_of,
    score_report,
    seeds_table,
    self_correction_check,
)
from redraft.fsutil import write_json_atomic
from redraft.models import default_device, load_model
from redraft.run_folder import finish_stage, main_process_stage, stage_result, start_run_dir
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
    star_episodes,
    train_self_correction_rl,
)

# The report lives in redraft.evaluation.score; the job's callers (CLI, main job, bench) import it from here.
__all__ = ["SINGLE_ATTEMPT", "ControlStart", "results_of", "run_score", "run_score_job", "score_report", "seeds_table"]


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
        model=load_model(model_path, cfg.model.dtype),
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
    base = load_model(cfg.model.path, cfg.model.dtype).to(default_device())

    def drafts(examples, seed, drafts_per_problem):
        return pair_sft_episodes(
            base,
            tokenizer,
            task,
            examples,
            s.protocol,
            s.draft_temperature,
            s.max_new_tokens,
            seed,
            drafts_per_problem,
            s.stop,
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
    drawn = len(task.demonstration_examples) * s.drafts_per_problem
    if not episodes:
        raise RedraftError(f"Pair-SFT: none of the {drawn} demonstrations or drafts passes the task's checker")
    mix = {
        "draft_wrong_share": sum(not draft_is_right(e) for e in episodes) / len(episodes),
        # Rows whose demonstration and draft both fail the checker: no correct answer to teach.
        "rows_without_correct_answer": drawn - len(episodes),
    }
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
        val_metrics=self_correction_check(cfg, task, tokenizer),
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
                load_model(sampler, cfg.model.dtype).to(default_device()),
                tokenizer,
                task,
                problems,
                s.protocol,
                s.rl.temperature,
                s.max_new_tokens,
                cfg.run.seed + iteration,
                s.stop,
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
        "dtype": cfg.model.dtype,
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


# Runs one sub-stage in its folder unless an earlier run finished it, and records its result:
# stage(name, train) calls train(stage_dir) and returns what it returned.
StageRunner = Callable[[str, Callable[[Path], dict[str, Any]]], dict[str, Any]]


def _train_score(job: dict[str, Any], stage: StageRunner) -> tuple[str, str, float]:
    """Pair-SFT -> Stage I -> Stage II: the Pair-SFT and SCoRe models and the seconds the three took."""
    s = job["cfg"].score
    pair = stage("pair_sft", lambda d: _pair_sft(**job, out_dir=d))
    base = pair["model_dir"]
    stage1 = stage(
        "stage1",
        lambda d: _rl(
            **job,
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
            **job,
            out_dir=d,
            stage="score_stage2",
            model_path=stage1["model_dir"],
            reference_path=base,
            iterations=s.stage2_iterations,
            multi_turn=True,
            credit=stage_credit(2, s.protocol.attempts, s.alpha, s.beta1, s.beta2),
        ),
    )
    return base, stage2["model_dir"], pair["seconds"] + stage1["seconds"] + stage2["seconds"]


@dataclass(frozen=True)
class ControlStart:
    """Single-turn RL already spent on the SFT model (the main job's RL stage): the single-attempt control
    continues from ``model_dir`` and trains only for what is left of SCoRe's wall-clock after ``seconds``."""

    model_dir: str
    seconds: float


def _control(job: dict[str, Any], out_dir: Path, start: ControlStart, score_seconds: float, iterations: int):
    """Single-turn RL from ``start`` until its single-turn RL time totals ``score_seconds``; with no time left,
    ``start``'s model as it is (it already had at least SCoRe's wall-clock)."""
    left = score_seconds - start.seconds
    if left > 0:
        # Iterations are a ceiling only: the wall-clock budget is what stops the control.
        result = _rl(
            **job,
            out_dir=out_dir,
            stage="control",
            model_path=start.model_dir,
            iterations=iterations,
            multi_turn=False,
            max_seconds=left,
        )
    else:
        result = {"model_dir": start.model_dir, "iterations": 0, "seconds": 0.0}
    return {**result, "starts_from": start.model_dir, "single_attempt_seconds": start.seconds + result["seconds"]}


def _train_baselines(
    job: dict[str, Any], stage: StageRunner, base: str, score_seconds: float, control_start: ControlStart
) -> dict[str, str]:
    """The configured baselines' models by method, trained from the Pair-SFT model ``base`` (the control
    from ``control_start``, to ``score_seconds`` of single-turn RL in all)."""
    cfg = job["cfg"]
    s = cfg.score
    both = s.stage1_iterations + s.stage2_iterations
    models = {"prompting": cfg.model.path, "pair_sft": base}
    if "star" in s.baselines:
        models["star"] = stage("star", lambda d: _star(**job, base=base, out_dir=d))["model_dir"]
    rl_baselines = {
        "single_turn_rl": {"model_path": base, "iterations": both, "multi_turn": False},
        "multiturn_rl": {"model_path": base, "iterations": both, "multi_turn": True, "reward_turns": "last"},
    }
    for name, settings in rl_baselines.items():
        if name in s.baselines:
            models[name] = stage(
                name,
                lambda d, name=name, settings=settings: _rl(**job, out_dir=d, stage=name, **settings),
            )["model_dir"]
    if "control" in s.baselines:
        models["control"] = stage(
            "control", lambda d: _control(job, d, control_start, score_seconds, 100 * max(both, 1))
        )["model_dir"]
    return {name: path for name, path in models.items() if name in s.baselines}


def _evaluate_methods(cfg: ScoreConfig, task: Task, models: dict[str, str], out_dir: Path) -> dict[str, Any]:
    """Every method's evaluations, each kept in ``out_dir/eval/<method>/`` (scaling curves: SCoRe and Pair-SFT)."""
    evaluations = {}
    for method, model_dir in models.items():
        eval_dir = out_dir / "eval" / method
        evaluations[method] = main_process_stage(
            eval_dir,
            lambda model_dir=model_dir, eval_dir=eval_dir, method=method: evaluate_method(
                cfg,
                task,
                model_dir,
                eval_dir,
                scaling=method in ("score", "pair_sft"),
                single_attempt=method in SINGLE_ATTEMPT,
            ),
        )
    return evaluations


def run_score(
    cfg: ScoreConfig,
    out_dir: Path,
    log: MetricsLog,
    resume: bool = False,
    task: Task | None = None,
    control_start: ControlStart | None = None,
) -> dict[str, Any]:
    """Train SCoRe and the configured baselines from ``cfg.model.path``; evaluate all of them. The single-attempt
    control trains from ``control_start`` (default: the SFT model, no time spent).

    Returns ``{"stages": {name: result}, "models": {method: checkpoint folder}, "evaluations": {method: {...}}}``
    and writes it to ``out_dir/score.json``.
    """
    if not cfg.model.path:
        raise RedraftError("score needs model.path (a single-attempt SFT checkpoint; use --model PATH)")
    task = task or build_task(cfg.task)
    tokenizer = load_tokenizer(cfg.model.path)
    task.use_tokenizer(tokenizer)  # chat prompts are rendered by its chat template
    out_dir.mkdir(parents=True, exist_ok=True)
    stages: dict[str, dict[str, Any]] = {}

    def stage(name: str, train: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        stage_dir = out_dir / name
        if not (done := stage_result(stage_dir)):
            done = finish_stage(stage_dir, train(stage_dir))
        stages[name] = done
        return done

    # the arguments every sub-stage's trainer takes
    job = {"cfg": cfg, "task": task, "tokenizer": tokenizer, "log": log, "resume": resume}
    base, score_model, score_seconds = _train_score(job, stage)
    control_start = control_start or ControlStart(cfg.model.path, 0.0)
    models = {**_train_baselines(job, stage, base, score_seconds, control_start), "score": score_model}
    summary = {
        "stages": stages,
        "models": models,
        "evaluations": _evaluate_methods(cfg, task, models, out_dir),
        "score_pipeline_seconds": score_seconds,
    }
    on_main_process(lambda: write_json_atomic(out_dir / "score.json", summary))
    return summary


def run_score_job(
    cfg: ScoreConfig, resume: bool = False, overwrite: bool = False, task: Task | None = None
) -> tuple[dict[str, Any], Path]:
    """`redraft score`: :func:`run_score` in the run folder ``cfg.run.directory``, then its report.md; returns
    the summary and the report's path."""
    out = cfg.run.directory
    start_run_dir(out, cfg, resume, overwrite)
    log = MetricsLog(out / "metrics.jsonl")
    summary = run_score(cfg, out, log, resume, task)
    report = out / "report.md"
    on_main_process(lambda: report.write_text(
        f"# redraft score run `{cfg.run.name}`\n\n" + score_report(summary, log.read(), out, heading="## Results")
    ))  # fmt: skip
    return summary, report
