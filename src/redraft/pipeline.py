"""Stages and the main job: tokenizer -> pretraining -> SFT -> evaluation -> report.

Each stage writes into its own folder and finishes by writing ``result.json``; a resumed run
skips finished stages and continues the unfinished one from its last checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from redraft.config import (
    EvalConfig,
    PipelineConfig,
    PretrainConfig,
    RLConfig,
    ScoreConfig,
    SFTConfig,
    TaskSection,
    TokenizerSection,
    TrainSection,
)
from redraft.data.sequences import pretraining_data, task_sft_data
from redraft.distributed import on_main_process, processes
from redraft.errors import RedraftError
from redraft.evaluation.evaluate import (
    EvalResult,
    evaluate,
    greedy_accuracy,
    greedy_verdicts,
    save_result,
)
from redraft.evaluation.metrics import paired_difference_ci95
from redraft.evaluation.plots import plot_accuracy, plot_losses, plot_rl
from redraft.evaluation.report import write_report
from redraft.models import build_model, default_device, load_model
from redraft.run_folder import (
    finish_stage,
    main_process_stage,
    stage_result,
    start_job_clock,
    start_run_dir,
    stop_job_clock,
)
from redraft.tasks import Task, build_task
from redraft.text.tokenizer import load_tokenizer, train_tokenizer
from redraft.training.lm import train_lm
from redraft.training.logging import MetricsLog, warn_epochs

SFT_SAME_TIME = "sft_same_time"  # stage and model name of the equal-wall-clock SFT control


def tokenizer_for(cfg: PretrainConfig | SFTConfig, task: Task, out_dir: Path):
    """The configured tokenizer, or one trained on the task corpus and saved to ``out_dir``."""
    if cfg.tokenizer.path:
        return load_tokenizer(cfg.tokenizer.path)
    if cfg.model.path:
        return load_tokenizer(cfg.model.path)
    with processes().main_process_first():  # trained and saved once; the other processes load it
        if (out_dir / "tokenizer_config.json").is_file():
            return load_tokenizer(out_dir)
        tokenizer = train_tokenizer(task.corpus(), cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
        tokenizer.save_pretrained(out_dir)
        return tokenizer


def _start_model(cfg: PretrainConfig | SFTConfig, task: Task, out_dir: Path):
    """The stage's tokenizer (trained on the task corpus when neither tokenizer.path nor model.path gives one) and
    its model, fresh or loaded."""
    tokenizer = tokenizer_for(cfg, task, out_dir / "tokenizer")
    task.use_tokenizer(tokenizer)  # chat rows need its chat template
    set_seed(cfg.run.seed)  # the initial weights depend on the seed alone
    return tokenizer, build_model(cfg.model, tokenizer)


def _train_lm_stage(
    stage: str, cfg: PretrainConfig | SFTConfig, out_dir: Path, log: MetricsLog, resume: bool, model, tokenizer, **data
) -> dict[str, Any]:
    """``train_lm`` on ``data`` (train, val, val_metrics) with the stage's settings; its result recorded."""
    result = train_lm(
        stage=stage, model=model, tokenizer=tokenizer, cfg=cfg.train, out_dir=out_dir, seed=cfg.run.seed, log=log,
        logging=cfg.logging, resume=resume, **data,
    )  # fmt: skip
    return finish_stage(
        out_dir, {**asdict(result), "model_dir": str(result.model_dir), "parameters": model.num_parameters()}
    )


def run_pretrain(
    cfg: PretrainConfig, out_dir: Path, log: MetricsLog, resume: bool = False, task: Task | None = None
) -> dict[str, Any]:
    if done := stage_result(out_dir):
        return done
    task = task or build_task(cfg.task)
    tokenizer, model = _start_model(cfg, task, out_dir)
    length = cfg.train.max_length
    val_texts = [task.prompt(ex) + ex.target for ex in task.val]
    train = pretraining_data(tokenizer, task.corpus(), length)
    val = pretraining_data(tokenizer, val_texts, length) if val_texts else None
    return _train_lm_stage("pretrain", cfg, out_dir, log, resume, model, tokenizer, train=train, val=val)


def run_sft(
    cfg: SFTConfig,
    out_dir: Path,
    log: MetricsLog,
    resume: bool = False,
    task: Task | None = None,
    stage: str = "sft",
    steps_key: str | None = "train.max_steps",
) -> dict[str, Any]:
    """SFT on the task's demonstrations; ``steps_key`` names the step count in the user's config (for the
    warning when those steps pass over the demonstrations too often; None: no warning)."""
    if done := stage_result(out_dir):
        return done
    task = task or build_task(cfg.task)
    if steps_key and not resume:
        warn_epochs(
            stage,
            len(task.demonstration_examples),
            cfg.train.max_steps,
            cfg.train.batch_size * cfg.train.grad_accum_steps,
            "examples",
            steps_key,
            _generated(cfg.task),
        )
    tokenizer, model = _start_model(cfg, task, out_dir)
    length = cfg.train.max_length
    length_key = (
        f"{steps_key.rsplit('.', 1)[0]}.max_length" if steps_key else "sft.max_length"
    )  # named in truncation warnings

    def pairs(examples, name: str):
        # Plain rows: prompt ‖ target ‖ EOS; TRL text, prompt/completion and chat rows in their own way.
        return task_sft_data(tokenizer, task, examples, length, name=name, setting=length_key)

    # Greedy accuracy needs answers to check (a TRL prompt/completion file may have none).
    accuracy_problems = task.val[: cfg.train.eval_accuracy_problems] if task.has_answers else []

    def val_accuracy(current_model) -> dict[str, float]:
        if not accuracy_problems:
            return {}
        return {
            "val_accuracy": greedy_accuracy(
                current_model,
                tokenizer,
                task,
                accuracy_problems,
                max_new_tokens=cfg.train.max_new_tokens,
                stop=cfg.train.stop,
            )
        }

    train = pairs(task.demonstration_examples, "SFT training rows")
    val = pairs(task.val, "SFT validation rows") if task.val else None
    return _train_lm_stage(stage, cfg, out_dir, log, resume, model, tokenizer, train=train, val=val,
                           val_metrics=val_accuracy)  # fmt: skip


def run_in_folder(runner, cfg, resume: bool = False, overwrite: bool = False, **kwargs: Any) -> dict[str, Any]:
    """One stage on its own, as its command runs it: ``runner(cfg, out_dir, log, resume, **kwargs)`` with outputs,
    config and metrics in ``<run.output_dir>/<run.name>/``."""
    out = cfg.run.directory
    start_run_dir(out, cfg, resume, overwrite)
    return runner(cfg, out, MetricsLog(out / "metrics.jsonl"), resume, **kwargs)


def _generated(task: TaskSection) -> bool:
    """Whether the task draws its problems, so that task.train_size can give more of them."""
    return task.kind in ("arithmetic", "math")


def run_rl(
    cfg: RLConfig,
    out_dir: Path,
    log: MetricsLog,
    resume: bool = False,
    task: Task | None = None,
    steps_key: str = "rl.iterations",
) -> dict[str, Any]:
    from redraft.training.rl import train_rl

    if done := stage_result(out_dir):
        return done
    if not cfg.model.path:
        raise RedraftError("rl needs model.path (an SFT checkpoint; use --model PATH)")
    task = task or build_task(cfg.task)
    if not resume:
        warn_epochs(
            "rl",
            len(task.train),
            cfg.rl.iterations,
            cfg.rl.prompts_per_iteration,
            "prompts",
            steps_key,
            _generated(cfg.task),
            unit="iterations",
        )
    result = train_rl(
        model_path=cfg.model.path,
        tokenizer=load_tokenizer(cfg.model.path),
        task=task,
        cfg=cfg.rl,
        out_dir=out_dir,
        seed=cfg.run.seed,
        log=log,
        logging=cfg.logging,
        resume=resume,
        dtype=cfg.model.dtype,
    )
    return finish_stage(out_dir, result)


def _sft_same_time_config(cfg: PipelineConfig, sft: dict[str, Any], seconds: float, model) -> SFTConfig:
    """SFT continued from the SFT model for ``seconds`` (the RL stage's wall-clock), the control
    that shows what RL adds over more of the same supervised training at equal cost."""
    seconds_per_step = sft["seconds"] / max(sft["steps"], 1)
    steps = max(1, math.ceil(2 * seconds / seconds_per_step))  # a cap only: the clock stops it
    train = cfg.sft.model_copy(update={"max_steps": steps, "max_seconds": seconds})
    return SFTConfig(run=cfg.run, task=cfg.task, logging=cfg.logging, model=model, train=train)


def run_eval(cfg: EvalConfig, out_dir: Path, task: Task | None = None) -> EvalResult:
    if not cfg.model.path:
        raise RedraftError("eval needs model.path (use --model PATH)")
    task = task or build_task(cfg.task)
    model = load_model(cfg.model.path, cfg.model.dtype).to(default_device())
    tokenizer = load_tokenizer(cfg.model.path)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = evaluate(model, tokenizer, task, cfg.eval, seed=cfg.run.seed, samples_path=out_dir / "samples.jsonl")
    save_result(result, out_dir / "eval.json")
    return result


def run_pipeline(cfg: PipelineConfig, resume: bool = False, overwrite: bool = False) -> Path:
    """The main job (SCoRe and its baselines last, when ``score.enabled``). Returns the path of the written report."""
    run_dir = cfg.run.directory
    start_run_dir(run_dir, cfg, resume, overwrite)
    log = MetricsLog(run_dir / "metrics.jsonl")
    on_main_process(lambda: start_job_clock(run_dir))
    task = build_task(cfg.task)

    shared = {"run": cfg.run, "task": cfg.task, "logging": cfg.logging}
    stages = {}
    if cfg.pretrain.max_steps:
        pretrain_train = TrainSection(**cfg.pretrain.model_dump())
        pretrain_cfg = PretrainConfig(**shared, tokenizer=cfg.tokenizer, model=cfg.model, train=pretrain_train)
        stages["pretrain"] = run_pretrain(pretrain_cfg, run_dir / "pretrain", log, resume, task)
        sft_cfg = SFTConfig(
            **shared, model=cfg.model.model_copy(update={"path": stages["pretrain"]["model_dir"]}), train=cfg.sft
        )
    else:  # SFT starts from the configured checkpoint, or from a fresh model on a tokenizer trained here
        tokenizer_dir = run_dir / "tokenizer"
        tokenizer_for(PretrainConfig(**shared, tokenizer=cfg.tokenizer, model=cfg.model), task, tokenizer_dir)
        tokenizer = cfg.tokenizer if cfg.tokenizer.path or cfg.model.path else TokenizerSection(path=str(tokenizer_dir))
        sft_cfg = SFTConfig(**shared, tokenizer=tokenizer, model=cfg.model, train=cfg.sft)
    sft = stages["sft"] = run_sft(sft_cfg, run_dir / "sft", log, resume, task, steps_key="sft.max_steps")

    def model_at(path: str):
        return cfg.model.model_copy(update={"path": path})

    models = {"sft": sft["model_dir"]}
    if cfg.rl.iterations:
        rl_cfg = RLConfig(**shared, model=model_at(sft["model_dir"]), rl=cfg.rl)
        stages["rl"] = run_rl(rl_cfg, run_dir / "rl", log, resume, task)
        models["rl"] = stages["rl"]["model_dir"]
        if cfg.sft_same_time:
            stages[SFT_SAME_TIME] = run_sft(
                _sft_same_time_config(cfg, sft, stages["rl"]["seconds"], model_at(sft["model_dir"])),
                run_dir / SFT_SAME_TIME,
                log,
                resume,
                task,
                stage=SFT_SAME_TIME,
                steps_key=None,
            )
            models[SFT_SAME_TIME] = stages[SFT_SAME_TIME]["model_dir"]

    results = {}
    for stage, model_dir in models.items():
        eval_dir = run_dir / "eval" / stage
        eval_cfg = EvalConfig(run=cfg.run, task=cfg.task, model=model_at(model_dir), eval=cfg.eval)
        done = main_process_stage(
            eval_dir, lambda eval_cfg=eval_cfg, eval_dir=eval_dir: asdict(run_eval(eval_cfg, eval_dir, task))
        )
        results[stage] = EvalResult(**{**done, "pass_at_k": {int(k): v for k, v in done["pass_at_k"].items()}})

    score_summary = None
    if cfg.score.enabled:
        from redraft.score import ControlStart, run_score

        score_cfg = ScoreConfig(**shared, model=model_at(sft["model_dir"]), score=cfg.score)
        # The RL stage is single-turn RL from the same SFT model: the single-attempt control continues it
        # rather than training that stretch again.
        control_start = ControlStart(models["rl"], stages["rl"]["seconds"]) if "rl" in models else None
        score_summary = run_score(score_cfg, run_dir / "score", log, resume, task, control_start)
    report = on_main_process(
        lambda: _write_run_report(cfg, run_dir, task, log, stages, results, score_summary, stop_job_clock(run_dir))
    )
    return report or run_dir / "report.md"


def _write_run_report(cfg, run_dir: Path, task: Task, log: MetricsLog, stages, results, score_summary, timings) -> Path:
    records = log.read()
    plots = [
        plot_losses(
            records, [name for name in ("pretrain", "sft", SFT_SAME_TIME) if name in stages], run_dir / "loss.png"
        ).name
    ]
    bars = {}
    for name, result in results.items():
        bars[f"{name} greedy"] = result.greedy_accuracy
        bars[f"{name} pass@{result.k}"] = result.pass_at_k[result.k]
    plots.append(plot_accuracy(records, "sft", bars, run_dir / "accuracy.png").name)
    if "rl" in stages:
        plots.append(plot_rl(records, run_dir / "rl.png").name)
    sections = []
    if score_summary is not None:
        from redraft.score import score_report

        sections.append(score_report(score_summary, records, run_dir))
    return write_report(
        run_dir,
        cfg=cfg,
        task=task,
        stages=stages,
        results=results,
        seconds=timings["main_job_seconds"],
        plots=plots,
        sections=sections,
        gains=stage_gains(run_dir, list(results)),
    )


STAGE_COMPARISONS = {  # (after, before) model pairs the report compares on the same test problems
    "RL over SFT": ("rl", "sft"),
    "SFT continued for RL's wall-clock, over SFT": (SFT_SAME_TIME, "sft"),
    "RL over SFT continued for the same wall-clock": ("rl", SFT_SAME_TIME),
}


def stage_gains(run_dir: Path, models: list[str]) -> dict[str, tuple[float, float]]:
    """Each STAGE_COMPARISONS pair's paired greedy-accuracy difference and 95% CI half-width, from the
    evaluated ``models``' per-problem verdicts in ``run_dir/eval``."""
    verdicts = {name: greedy_verdicts(run_dir / "eval" / name / "samples.jsonl") for name in models}
    return {
        label: paired_difference_ci95(verdicts[after], verdicts[before])
        for label, (after, before) in STAGE_COMPARISONS.items()
        if after in verdicts and before in verdicts
    }
