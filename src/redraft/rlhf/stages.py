"""The reward-model and DPO stages on preference pairs, as `redraft rm train`, `redraft dpo train` and the
trainer classes (:mod:`redraft.trainers`) run them: a run folder, the pairs, training, ``result.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from redraft.data.preferences import PreferencePair, load_pair_splits
from redraft.errors import RedraftError
from redraft.rlhf.config import DPOConfig, RewardModelConfig
from redraft.run_folder import finish_stage, start_run_dir
from redraft.training.logging import MetricsLog, warn_epochs


def _start(
    cfg: RewardModelConfig | DPOConfig, section: str, resume: bool, overwrite: bool
) -> tuple[Path, MetricsLog, list[PreferencePair], list[PreferencePair]]:
    """The run folder, its metrics log and the (training, held-out) pairs; warns when the steps pass over the
    training pairs too often."""
    if not cfg.model.path:
        raise RedraftError("set the starting model with --model PATH (model.path)")
    out = cfg.run.directory
    start_run_dir(out, cfg, resume, overwrite)
    p = cfg.pairs
    train, val = load_pair_splits(p.train_path, p.ratings_path, p.val_path, p.val_fraction, cfg.run.seed)
    if not resume:
        settings = getattr(cfg, section).train
        steps_key = f"{section}.train.max_steps"
        batch = settings.batch_size * settings.grad_accum_steps
        warn_epochs(section, len(train), settings.max_steps, batch, "pairs", steps_key)
    return out, MetricsLog(out / "metrics.jsonl"), train, val


def run_reward_model(cfg: RewardModelConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """A Bradley–Terry reward model on ``cfg.pairs``, started from ``cfg.model.path``; its folder is
    ``result["model_dir"]`` and ``result["train_pairs"]`` counts the training pairs."""
    from redraft.rlhf.loop import train_reward_model_from

    out, log, train, val = _start(cfg, "reward_model", resume, overwrite)
    result = train_reward_model_from(
        cfg.model.path,
        train,
        val,
        cfg.reward_model,
        out,
        cfg.run.seed,
        log,
        cfg.logging,
        model_cfg=cfg.model,
        resume=resume,
    )
    result["train_pairs"] = len(train)
    finish_stage(out, result)
    return result


def run_dpo(cfg: DPOConfig, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
    """DPO of ``cfg.model.path`` on ``cfg.pairs`` against a frozen copy of it; the policy is ``result["model_dir"]``."""
    from redraft.tasks import build_task
    from redraft.text.tokenizer import load_tokenizer
    from redraft.training.dpo import train_dpo

    out, log, train, val = _start(cfg, "dpo", resume, overwrite)
    result = train_dpo(
        model_path=cfg.model.path,
        tokenizer=load_tokenizer(cfg.model.path),
        train_pairs=train,
        val_pairs=val,
        cfg=cfg.dpo,
        out_dir=out,
        seed=cfg.run.seed,
        log=log,
        logging=cfg.logging,
        task=build_task(cfg.task) if cfg.task is not None else None,
        resume=resume,
        dtype=cfg.model.dtype,
    )
    finish_stage(out, result)
    return result
