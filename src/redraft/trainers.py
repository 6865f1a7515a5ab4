"""Trainer classes in TRL's shape: a model, a ``datasets.Dataset`` (and, for RL, reward callables) in, ``train()``.

::

    from redraft import GRPOTrainer

    def reward_len(completions, **kwargs):
        return [-abs(20 - len(completion)) for completion in completions]

    trainer = GRPOTrainer(model="path/to/sft-model", reward_funcs=reward_len, train_dataset=dataset)
    trainer.train()

Each trainer runs the stage its CLI command runs (``redraft sft``, ``rl``, ``dpo train``, ``rm train``,
``score``) with ``args`` as that command's config, in ``<args.run.output_dir>/<args.run.name>/``. A dataset is
written as JSONL to the sibling folder ``<name>-data/`` and read back as the command reads a file, so every
format the CLI takes (``text``, ``prompt``/``completion``, ``messages``, ``prompt``/``chosen``/``rejected``,
conversational or not) works here too, and a resumed run finds it again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field
from transformers import PreTrainedModel

from redraft.config import RLConfig, RunSection, ScoreConfig, SFTConfig
from redraft.config.stages import RUN
from redraft.errors import ConfigError
from redraft.models import load_model, save_model
from redraft.pipeline import run_in_folder, run_rl, run_sft
from redraft.rewards.base import combine
from redraft.rewards.named import named_reward
from redraft.rlhf.config import DPOConfig, RewardModelConfig
from redraft.rlhf.stages import run_dpo, run_reward_model
from redraft.score import run_score_job
from redraft.tasks import build_task
from redraft.text.tokenizer import load_tokenizer

RewardFunc = Callable[..., list[float]] | str  # TRL's signature f(prompts, completions, **columns), or a name


class GRPOConfig(RLConfig):
    """`redraft rl`'s config (GRPO is rl.algorithm's default), its run named grpo."""

    run: RunSection = Field(RunSection(name="grpo"), description=RUN)


RewardConfig = RewardModelConfig  # TRL's name for the reward-model trainer's config


def _write_rows(data: Any, path: Path) -> str:
    """``data`` (a ``datasets.Dataset``, a list of row dicts, or a JSONL/Parquet file) as a file the tasks read."""
    if isinstance(data, (str, Path)):
        return str(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(data, "to_json"):
        data.to_json(str(path), lines=True, force_ascii=False)
    else:
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in data))
    return str(path)


class _Trainer:
    """What every trainer shares: the model as a checkpoint folder, the dataset as a file, the run folder."""

    config_class: type  # the command's config, set by each trainer

    def __init__(
        self,
        model: str | Path | PreTrainedModel,
        args=None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class=None,
    ):
        self.args = args if args is not None else self.config_class()
        if not isinstance(self.args, self.config_class):
            raise ConfigError(f"{type(self).__name__} takes args={self.config_class.__name__}(...)")
        self.model, self.processing_class = model, processing_class
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        run_dir = self.args.run.directory
        self.data_dir = run_dir.with_name(f"{run_dir.name}-data")
        self.result: dict[str, Any] | None = None

    def _model_path(self) -> str:
        """A checkpoint folder of the model: its own, or the model object (with ``processing_class``) saved."""
        model, tokenizer = self.model, self.processing_class
        if isinstance(model, (str, Path)) and tokenizer is None:
            return str(model)
        if isinstance(model, (str, Path)):
            model = load_model(model, self.args.model.dtype)
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model.name_or_path)
        save_model(model, tokenizer, self.data_dir / "model")
        return str(self.data_dir / "model")

    def _config(self, **sections: dict[str, Any]):
        """``args`` with model.path set and each of ``sections`` merged into its section."""
        data = self.args.model_dump(mode="json")
        data["model"] = {**data["model"], "path": self._model_path()}
        for name, keys in sections.items():
            data[name] = {**(data.get(name) or {}), **keys}
        return self.config_class.model_validate(data)

    def _file_task(self) -> dict[str, Any]:
        """The task section's keys that make the datasets a file task (none without a train_dataset)."""
        if self.train_dataset is None:
            return {}
        keys = {"kind": "file", "train_path": _write_rows(self.train_dataset, self.data_dir / "train.jsonl")}
        if self.eval_dataset is not None:
            keys["test_path"] = _write_rows(self.eval_dataset, self.data_dir / "test.jsonl")
        return keys

    def _run(self, cfg, resume: bool, overwrite: bool) -> dict[str, Any]:
        raise NotImplementedError

    def train(self, resume_from_checkpoint: bool = False, overwrite: bool = False) -> dict[str, Any]:
        """Train; ``resume_from_checkpoint`` continues an interrupted run, ``overwrite`` replaces a finished one.
        Returns the stage's result (``result["model_dir"]`` is the trained checkpoint)."""
        self.result = self._run(self._config(**self._sections()), resume_from_checkpoint, overwrite)
        return self.result

    def _sections(self) -> dict[str, dict[str, Any]]:
        return {"task": self._file_task()}

    def save_model(self, output_dir: str | Path) -> None:
        """Copy the trained checkpoint (a plain HF folder; LoRA adapters alone in ``adapter/``) to ``output_dir``."""
        if self.result is None:
            raise ConfigError("save_model() comes after train()")
        shutil.copytree(self.result["model_dir"], output_dir, dirs_exist_ok=True)


class SFTTrainer(_Trainer):
    """Completion-only SFT (`redraft sft`) on ``train_dataset`` (text, prompt/completion or messages rows)."""

    config_class = SFTConfig

    def _config(self, **sections):
        cfg = super()._config(**sections)
        return cfg.model_copy(update={"tokenizer": cfg.tokenizer.model_copy(update={"path": cfg.model.path})})

    def _run(self, cfg, resume, overwrite):
        return run_in_folder(run_sft, cfg, resume, overwrite)


class GRPOTrainer(_Trainer):
    """RL (`redraft rl`, GRPO unless ``args.rl.algorithm`` says otherwise) on ``train_dataset``'s prompts, scored by
    ``reward_funcs``: callables in TRL's signature (every dataset column arrives under its own name) or reward
    names (``math``, ``code``, ``checker``, ``module:function``), summed with ``reward_weights``."""

    config_class = GRPOConfig

    def __init__(
        self,
        model: str | Path | PreTrainedModel,
        reward_funcs: RewardFunc | Sequence[RewardFunc] | None = None,
        args: GRPOConfig | None = None,
        train_dataset: Any = None,
        eval_dataset: Any = None,
        processing_class=None,
        reward_weights: Sequence[float] | None = None,
    ):
        super().__init__(model, args, train_dataset, eval_dataset, processing_class)
        if reward_funcs is None:
            funcs = []
        elif callable(reward_funcs) or isinstance(reward_funcs, str):
            funcs = [reward_funcs]
        else:
            funcs = list(reward_funcs)
        weights = list(reward_weights) if reward_weights is not None else [1.0] * len(funcs)
        if len(weights) != len(funcs):
            raise ConfigError(f"reward_weights has {len(weights)} weights for {len(funcs)} reward_funcs")
        self.reward_funcs, self.reward_weights = funcs, weights

    def _run(self, cfg, resume, overwrite):
        task = build_task(cfg.task)
        if self.reward_funcs:
            funcs = [named_reward(f, task.match) if isinstance(f, str) else f for f in self.reward_funcs]
            plain = len(funcs) == 1 and self.reward_weights == [1.0]
            task.reward_fn = funcs[0] if plain else combine(*zip(funcs, self.reward_weights, strict=True))
        return run_in_folder(run_rl, cfg, resume, overwrite, task=task)


class DPOTrainer(_Trainer):
    """DPO (`redraft dpo train`) on preference rows (prompt/chosen/rejected, conversational or not, or with the
    prompt implicit in chosen/rejected); the reference is the starting model, frozen."""

    config_class = DPOConfig

    def __init__(self, model, ref_model=None, args=None, train_dataset=None, eval_dataset=None, processing_class=None):
        if ref_model is not None:
            raise ConfigError("DPOTrainer: the reference is a frozen copy of model; pass ref_model=None")
        super().__init__(model, args, train_dataset, eval_dataset, processing_class)

    def _sections(self):
        return {"pairs": _pair_files(self)}

    def _run(self, cfg, resume, overwrite):
        return run_dpo(cfg, resume, overwrite)


class RewardTrainer(_Trainer):
    """A Bradley–Terry reward model (`redraft rm train`) on preference rows, started from ``model``."""

    config_class = RewardModelConfig

    def _sections(self):
        return {"pairs": _pair_files(self)}

    def _run(self, cfg, resume, overwrite):
        return run_reward_model(cfg, resume, overwrite)


class SCoReTrainer(_Trainer):
    """SCoRe self-correction and its baselines (`redraft score`) from the single-attempt model ``model``, on
    ``train_dataset``'s problems (or the config's task). ``result["model_dir"]`` is SCoRe's model,
    ``result["models"]`` every method's and ``result["report"]`` the run's report.md."""

    config_class = ScoreConfig

    def _run(self, cfg, resume, overwrite):
        summary, report = run_score_job(cfg, resume, overwrite)
        return {**summary, "model_dir": summary["models"]["score"], "report": str(report)}


def _pair_files(trainer: _Trainer) -> dict[str, Any]:
    keys: dict[str, Any] = {}
    if trainer.train_dataset is not None:
        keys["train_path"] = _write_rows(trainer.train_dataset, trainer.data_dir / "pairs.jsonl")
    if trainer.eval_dataset is not None:
        keys["val_path"] = _write_rows(trainer.eval_dataset, trainer.data_dir / "val_pairs.jsonl")
    return keys
