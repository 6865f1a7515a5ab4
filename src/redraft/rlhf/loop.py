"""One RLHF round and the loop of rounds.

A round takes a policy folder and preference pairs and either trains a reward model and then PPO
against it (KL-penalised to the round's starting policy), or runs DPO on the pairs; it returns
the metrics of each stage and of the resulting policy. The loop repeats
sample -> collect -> round -> evaluate, with collection as a plain callable: the in-process
simulated annotator (``rlhf.collect: simulated``) or the feedback web app (``rlhf.collect: app``:
the completions are queued in the feedback store, labelled over HTTP by simulated annotators or
by people in the browser, and exported as pairs).

Every stage writes ``result.json`` when it finishes, so a rerun skips what is done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed

from redraft.config import LoggingSection, ModelSection, RewardModelSection, SamplingSection, dump_config
from redraft.data.preferences import PreferencePair, read_pairs, write_pairs
from redraft.envs.base import SingleTurnEnv
from redraft.errors import RedraftError
from redraft.evaluation.evaluate import greedy_accuracy, greedy_answers
from redraft.evaluation.metrics import mean_ci95
from redraft.fsutil import write_json_atomic
from redraft.models.build import load_model
from redraft.rlhf.config import (
    RLHFConfig,
    RLHFSection,
    SimulatedSection,
)
from redraft.rlhf.simulated import SimulatedLabeller
from redraft.rollout.sampler import generate
from redraft.tasks import Task, build_task
from redraft.tasks.base import Example, answers_match
from redraft.text.tokenizer import load_tokenizer
from redraft.training.logging import MetricsLog

Collect = Callable[[Sequence[Example], Sequence[Sequence[str]]], list[PreferencePair]]
RESULT = "result.json"


class CheckerWatch:
    """The reward model's reward, with the task checker's verdict on the same samples logged beside it.

    PPO never sees the checker; the log (stage ``ppo_watch``, one record per reward call) shows
    reward hacking as it happens: the reward-model score rising while the samples' checker
    accuracy falls.
    """

    def __init__(self, reward_fn, task: Task, log: MetricsLog):
        self.reward_fn, self.task, self.log, self.calls = reward_fn, task, log, 0
        self.__name__ = getattr(reward_fn, "__name__", "reward_model")

    def __call__(self, prompts: list[str], completions: list[str], **fields: Any) -> list[float]:
        scores = self.reward_fn(prompts=prompts, completions=completions, **fields)
        correct = [
            answers_match(self.task.extract(c), a, self.task.match) for c, a in zip(completions, fields["answer"])
        ]
        self.calls += 1
        self.log.write(
            "ppo_watch",
            self.calls,
            reward_model_score=sum(scores) / len(scores),
            checker_accuracy=sum(correct) / len(correct),
        )
        return scores


def _once(stage_dir: Path, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run()``'s result, or the one a previous run saved in ``stage_dir``."""
    path = stage_dir / RESULT
    if path.is_file():
        return json.loads(path.read_text())
    result = run()
    stage_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, result)
    return result


def sample_completions(
    model, tokenizer, task: Task, examples: Sequence[Example], settings: SimulatedSection, seed: int
) -> list[list[str]]:
    """``settings.samples_per_prompt`` completions per example, sampled at ``settings.temperature``."""
    k = settings.samples_per_prompt
    prompts = [task.prompt(ex) for ex in examples for _ in range(k)]
    sampling = SamplingSection(
        temperature=settings.temperature, max_new_tokens=settings.max_new_tokens, stop=settings.stop
    )
    texts = generate(model, tokenizer, prompts, sampling, seed=seed).texts
    return [texts[i * k : (i + 1) * k] for i in range(len(examples))]


def evaluate_policy(
    policy_dir: str | Path,
    reference_dir: str | Path,
    task: Task,
    test_problems: int | None,
    max_new_tokens: int,
    seed: int = 0,
    dtype: str = "fp32",
    stop: Sequence[str] = (),
) -> dict[str, float]:
    """Greedy test accuracy (95% CI), greedy validation accuracy and sampled KL(π ‖ π_ref) on test prompts, with
    the weights in ``dtype`` and answers ended by EOS, a ``stop`` string or ``max_new_tokens``."""
    from redraft.training.dpo import sampled_kl

    policy, tokenizer = load_model(policy_dir, dtype), load_tokenizer(policy_dir)
    test = task.test[:test_problems]
    _, correct = greedy_answers(policy, tokenizer, task, test, max_new_tokens, stop=stop)
    accuracy, ci95 = mean_ci95(correct)
    metrics = {"test_accuracy": accuracy, "test_accuracy_ci95": ci95, "test_problems": len(test)}
    if task.val:
        metrics["val_accuracy"] = greedy_accuracy(
            policy, tokenizer, task, task.val, max_new_tokens=max_new_tokens, stop=stop
        )
    if Path(policy_dir).resolve() != Path(reference_dir).resolve():
        kl_prompts = [task.prompt(ex) for ex in test[:512]]
        reference = load_model(reference_dir, dtype)
        metrics.update(sampled_kl(policy, reference, tokenizer, kl_prompts, max_new_tokens, seed, stop))
    return metrics


def train_reward_model_from(
    model_dir: str | Path,
    train_pairs: list[PreferencePair],
    val_pairs: list[PreferencePair],
    cfg: RewardModelSection,
    out_dir: Path,
    seed: int,
    log: MetricsLog,
    logging: LoggingSection,
    model_cfg: ModelSection | None = None,
    resume: bool = False,
) -> dict[str, Any]:
    """A reward model started from ``model_dir`` (or a fresh ``model_cfg`` preset with its tokenizer)."""
    from redraft.models.reward import build_reward_model
    from redraft.training.reward_model import train_reward_model

    tokenizer = load_tokenizer(model_dir)
    model_cfg = (model_cfg or ModelSection()).model_copy(update={"path": str(model_dir)})
    set_seed(seed)  # the head's (or a fresh model's) initial weights
    model = build_reward_model(tokenizer, model_cfg, fresh=cfg.init == "fresh", head=cfg.head)
    return train_reward_model(
        model=model,
        tokenizer=tokenizer,
        train_pairs=train_pairs,
        val_pairs=val_pairs,
        cfg=cfg,
        out_dir=out_dir,
        seed=seed,
        log=log,
        logging=logging,
        resume=resume,
    )


def run_rlhf_round(
    *,
    model_dir: str | Path,
    train_pairs: list[PreferencePair],
    val_pairs: list[PreferencePair],
    task: Task,
    cfg: RLHFSection,
    out_dir: str | Path,
    seed: int,
    log: MetricsLog,
    logging: LoggingSection,
    resume: bool = False,
    dtype: str = "fp32",
) -> dict[str, Any]:
    """Reward model + PPO (``cfg.method == "ppo"``) or DPO on the pairs; returns every stage's metrics.

    The new policy is at ``result["policy_dir"]``; ``result["eval"]`` holds its greedy accuracy
    and its KL to ``model_dir``.
    """
    from redraft.training.dpo import train_dpo

    out_dir = Path(out_dir)
    result: dict[str, Any] = {"method": cfg.method, "train_pairs": len(train_pairs), "val_pairs": len(val_pairs)}
    run = RoundRun(Path(model_dir), out_dir, seed, log, logging, resume, dtype)
    if cfg.method == "ppo":
        result |= _reward_model_and_ppo(run, train_pairs, val_pairs, task, cfg)
    else:
        result["dpo"] = _once(
            out_dir / "dpo",
            lambda: train_dpo(
                model_path=model_dir,
                tokenizer=load_tokenizer(model_dir),
                train_pairs=train_pairs,
                val_pairs=val_pairs,
                cfg=cfg.dpo,
                out_dir=out_dir / "dpo",
                task=task,
                **run.training_kwargs(),
            ),
        )
        result["policy_dir"] = result["dpo"]["model_dir"]
    result["eval"] = _once(
        out_dir / "eval",
        lambda: evaluate_policy(
            result["policy_dir"], model_dir, task, cfg.test_problems, cfg.max_new_tokens, seed, dtype, cfg.stop
        ),
    )
    return result


@dataclass(frozen=True)
class RoundRun:
    """What every stage of one round shares: its start, its folder and how it runs."""

    model_dir: Path
    out_dir: Path
    seed: int
    log: MetricsLog
    logging: LoggingSection
    resume: bool
    dtype: str

    def training_kwargs(self) -> dict[str, Any]:
        return {"seed": self.seed, "log": self.log, "logging": self.logging, "resume": self.resume, "dtype": self.dtype}


def _reward_model_and_ppo(
    run: RoundRun, train_pairs: list[PreferencePair], val_pairs: list[PreferencePair], task: Task, cfg: RLHFSection
) -> dict[str, Any]:
    """A reward model on the pairs, then PPO of the round's policy against it (the checker watching)."""
    from redraft.rewards.reward_model import RewardModelScorer
    from redraft.training.rl import train_rl

    reward_model = _once(
        run.out_dir / "reward_model",
        lambda: train_reward_model_from(
            cfg.reward_model.path or run.model_dir,
            train_pairs,
            val_pairs,
            cfg.reward_model,
            run.out_dir / "reward_model",
            run.seed,
            run.log,
            run.logging,
            model_cfg=ModelSection(dtype=run.dtype),
            resume=run.resume,
        ),
    )
    scorer = RewardModelScorer(reward_model["model_dir"], batch_size=cfg.reward_model.score_batch_size, dtype=run.dtype)
    watched = CheckerWatch(scorer, task, run.log)
    ppo = _once(
        run.out_dir / "ppo",
        lambda: train_rl(
            model_path=run.model_dir,
            tokenizer=load_tokenizer(run.model_dir),
            task=task,
            cfg=cfg.ppo,
            out_dir=run.out_dir / "ppo",
            env_factory=lambda: SingleTurnEnv(task, reward_fn=watched),
            **run.training_kwargs(),
        ),
    )
    return {"reward_model": reward_model, "ppo": ppo, "policy_dir": ppo["model_dir"]}


def collect_pairs(
    policy_dir: str | Path,
    task: Task,
    settings: SimulatedSection,
    out_dir: Path,
    seed: int,
    jobs: list[tuple[Sequence[Example], Collect, str]],
    dtype: str = "fp32",
) -> dict[str, int]:
    """For each (examples, collect, file name): sample completions from the policy (weights in ``dtype``), label
    them, write the pairs."""
    policy, tokenizer = load_model(policy_dir, dtype), load_tokenizer(policy_dir)
    counts = {}
    for offset, (examples, collect, name) in enumerate(jobs):
        pairs = collect(examples, sample_completions(policy, tokenizer, task, examples, settings, seed + offset))
        write_pairs(out_dir / name, pairs)
        counts[name] = len(pairs)
    return counts


def round_prompts(examples: Sequence[Example], count: int, round_index: int) -> list[Example]:
    """The round's slice of the training problems, wrapping around; each round sees new prompts while they last."""
    start = (round_index * count) % len(examples)
    return [examples[(start + i) % len(examples)] for i in range(min(count, len(examples)))]


def round_collectors(cfg: RLHFConfig, task: Task, round_dir: Path, index: int) -> tuple[Collect, Collect]:
    """(training collector, held-out collector) of round ``index``, as ``rlhf.collect`` says.

    Simulated labellers label training pairs with ``simulated.noise`` and held-out pairs without
    noise, so held-out accuracy measures the true preference, not agreement with noise.
    """
    from redraft.rlhf.collect import FeedbackAppCollector

    settings, seed = cfg.rlhf, cfg.run.seed + 2 * index
    noises = {"train": settings.simulated.noise, "val": 0.0}
    if settings.collect == "simulated":
        return SimulatedLabeller(task, noises["train"], seed), SimulatedLabeller(task, noises["val"], seed + 1)
    url = settings.app.store_url or f"sqlite:///{round_dir / 'feedback.db'}"
    train, val = (
        FeedbackAppCollector(task, url, f"round-{index + 1}-{name}", settings.app, noises[name], seed + offset)
        for offset, name in enumerate(("train", "val"))
    )
    return train, val


def run_rlhf(
    cfg: RLHFConfig, collect: Collect | None = None, collect_val: Collect | None = None, resume: bool = False
) -> dict[str, Any]:
    """``cfg.rlhf.rounds`` rounds of sample -> collect -> train -> evaluate from ``cfg.model.path``.

    ``collect`` labels training pairs and ``collect_val`` held-out pairs (validation prompts);
    without them each round uses :func:`round_collectors`.
    """
    if not cfg.model.path:
        raise RedraftError("rlhf needs model.path (an SFT checkpoint; use --model PATH)")
    settings = cfg.rlhf
    run_dir = cfg.run.directory
    run_dir.mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    log = MetricsLog(run_dir / "metrics.jsonl")
    task = build_task(cfg.task).use_tokenizer(load_tokenizer(cfg.model.path))  # chat prompts: its chat template
    seed, dtype = cfg.run.seed, cfg.model.dtype

    policy_dir = str(cfg.model.path)
    summary: dict[str, Any] = {
        "start": _once(
            run_dir / "eval-start",
            lambda: evaluate_policy(
                policy_dir,
                policy_dir,
                task,
                settings.test_problems,
                settings.max_new_tokens,
                seed,
                dtype,
                settings.stop,
            ),
        ),
        "rounds": [],
    }
    for index in range(settings.rounds):
        round_dir = run_dir / f"round-{index + 1}"
        round_dir.mkdir(exist_ok=True)
        train_examples = round_prompts(task.train, settings.simulated.prompts, index)
        default_train, default_val = round_collectors(cfg, task, round_dir, index)
        jobs = [
            (train_examples, collect or default_train, "pairs.jsonl"),
            (task.val[: settings.simulated.val_prompts], collect_val or default_val, "val_pairs.jsonl"),
        ]
        _once(
            round_dir / "collect",
            partial(
                collect_pairs,
                policy_dir,
                task,
                settings.simulated,
                round_dir,
                seed * 1000 + 2 * index,
                jobs,
                dtype,
            ),
        )
        result = run_rlhf_round(
            model_dir=policy_dir,
            train_pairs=read_pairs(round_dir / "pairs.jsonl"),
            val_pairs=read_pairs(round_dir / "val_pairs.jsonl"),
            task=task,
            cfg=settings,
            out_dir=round_dir,
            seed=seed + index,
            log=log,
            logging=cfg.logging,
            resume=resume,
            dtype=dtype,
        )
        summary["rounds"].append(result)
        policy_dir = result["policy_dir"]
    write_json_atomic(run_dir / RESULT, summary)
    return summary
