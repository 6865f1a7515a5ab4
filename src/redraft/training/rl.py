"""One RL loop for GRPO, RLOO, REINFORCE++ and PPO.

Each iteration, in this order (the phases of :func:`train_rl`): rollout (prompts -> episodes with the
sampler, several samples per prompt; the sampler's temperature-aware log-probs are the "old"
log-probs; the environment's rewards) -> reference log-probs and per-token KL (and the critic's
values) -> advantages (the algorithm's choice) -> update (minibatch epochs of the clipped policy
loss, + the critic's clipped value loss for PPO; :mod:`redraft.training.rl_update`) -> metrics,
evaluation. Checkpoints, the time limit and the final export are the shared :class:`TrainingLoop`'s.

Where the KL to the reference goes: GRPO adds it to the loss (k-estimator on sampled tokens);
RLOO folds the sequence's summed KL into its score; REINFORCE++ and PPO put −β·KL on every token's
reward. The math lives in :mod:`redraft.algorithms`; this file only wires it together.

Multi-turn episodes (SCoRe self-correction) can instead take a :class:`TurnCredit`: each attempt's
tokens are credited with that attempt's own reward (discount 0, leave-one-out baseline, optional
shaping bonus on the last attempt) and carry their own KL coefficient in the loss.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from redraft.algorithms import (
    AdaptiveKLController,
    FixedKLController,
    TurnCredit,
    aggregation_units,
    kl_penalty,
    turns_to_tokens,
)
from redraft.config import LoggingSection, RLSection, SamplingSection
from redraft.data.sequences import micro_batch_rows
from redraft.distributed import global_sum, rank_share, require_divisible
from redraft.envs.base import Environment, SingleTurnEnv
from redraft.evaluation.evaluate import greedy_accuracy
from redraft.models.adapters import apply_lora
from redraft.models.build import load_model, save_model
from redraft.models.value import ValueModel
from redraft.rollout.batch import RolloutBatch, collate_episodes, sequence_logprobs
from redraft.rollout.episodes import run_episodes
from redraft.rollout.sampler import derive_seed
from redraft.tasks.base import Task
from redraft.training.logging import MetricsLog
from redraft.training.loop import Schedule, TrainingLoop
from redraft.training.optim import build_optimizer
from redraft.training.rl_advantages import compute_advantages
from redraft.training.rl_metrics import iteration_metrics
from redraft.training.rl_update import update

EnvFactory = Callable[[], Environment]


@dataclass
class Learner:
    """What the phases of an iteration share: the settings, the models and their optimizers."""

    cfg: RLSection
    loop: TrainingLoop
    policy: torch.nn.Module  # wrapped for training (DDP under several processes)
    sampler: torch.nn.Module  # the same weights, unwrapped: sampling and evaluation
    optimizer: torch.optim.Optimizer
    scheduler: Any
    reference: torch.nn.Module | None
    critic: torch.nn.Module | None
    critic_optimizer: torch.optim.Optimizer | None
    controller: AdaptiveKLController | FixedKLController
    credit: TurnCredit | None
    seed: int
    # Dr. GRPO's constant normaliser (loss_agg=seq_mean_token_sum_norm): the most action tokens an episode
    # can have, not the minibatch's tensor width, which depends on prompt lengths and minibatch makeup.
    max_action_tokens: int
    zero_reward_iterations: int = 0

    @property
    def local_rollouts(self) -> int:
        return self.cfg.prompts_per_iteration * self.cfg.samples_per_prompt // self.loop.world

    def global_share(self, mask: torch.Tensor, mode: str) -> float:
        """This rank's weight in a loss averaged over the whole minibatch (DDP averages over ranks)."""
        if self.loop.world == 1:
            return 1.0
        units = aggregation_units(mask, mode)
        return float(self.loop.world * units / global_sum(self.loop.accelerator, units).clamp(min=1))


def rollout(
    learner: Learner, task: Task, tokenizer, env_factory: EnvFactory, sampling, generate_turn, iteration: int
) -> RolloutBatch:
    """This rank's share of the iteration's prompts, each sampled ``samples_per_prompt`` times, with rewards."""
    cfg, rank, world = learner.cfg, learner.loop.rank, learner.loop.world
    rows = micro_batch_rows(len(task.train), cfg.prompts_per_iteration, learner.seed, iteration - 1)
    examples = [task.train[r] for r in rank_share(rows, rank, world) for _ in range(cfg.samples_per_prompt)]
    # One random stream per sample, named by its place in the global batch: the rollouts are
    # the same whether one process, N ranks or Ray actors sample them.
    first_row = rank * learner.local_rollouts
    row_seeds = [derive_seed(learner.seed, iteration, first_row + row) for row in range(learner.local_rollouts)]
    episodes = run_episodes(
        learner.sampler,
        tokenizer,
        [env_factory() for _ in examples],
        examples,
        sampling,
        generate_turn=generate_turn,
        row_seeds=row_seeds,
    )
    return collate_episodes(episodes, tokenizer.pad_token_id, cfg.truncation_penalty).to(
        learner.loop.accelerator.device
    )


@torch.no_grad()
def score_rollouts(learner: Learner, batch: RolloutBatch, resample_old_logp: bool) -> dict[str, torch.Tensor | None]:
    """Per-token KL to the reference (zeros without one), the reference log-probs, the critic's values
    and, with per-attempt credit, each action token's KL coefficient.

    ``resample_old_logp``: the first turn was sampled off the policy's temperature, so the "old"
    log-probs are re-scored as the policy's own at ``rl.temperature``.
    """
    cfg, mask = learner.cfg, batch.action_mask
    rows = (cfg.micro_batch_size or len(mask)) // learner.loop.world

    def in_chunks(forward: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
        # no-grad passes over the rollouts, a chunk of micro_batch_size rows at a time (bounded memory)
        chunks = zip(batch.input_ids.split(rows), batch.attention_mask.split(rows), mask.split(rows), strict=True)
        with torch.no_grad():  # constants of the update: old and reference log-probs, old values
            return torch.cat([forward(*chunk) for chunk in chunks])

    def logprobs(model: torch.nn.Module) -> torch.Tensor:
        return in_chunks(lambda ids, attn, acting: sequence_logprobs(model, ids, attn, cfg.temperature, acting)[0])

    if resample_old_logp:
        batch.old_logp = logprobs(learner.sampler) * mask
    ref_logp = None
    kl_tokens = torch.zeros_like(batch.old_logp)  # β = 0: the penalty is zero whatever the KL
    if learner.reference is not None:
        ref_logp = logprobs(learner.reference)
        kl_tokens = kl_penalty(batch.old_logp, ref_logp, cfg.kl_estimator) * mask
    credit = learner.credit
    return {
        "kl_tokens": kl_tokens,
        "ref_logp": ref_logp,
        "old_values": in_chunks(lambda ids, attn, _: learner.critic(ids, attn)) if learner.critic is not None else None,
        "token_kl_coefs": (
            turns_to_tokens(mask.new_tensor(credit.kl_coefs).expand(len(mask), -1), batch.turn_ids, mask)
            if credit is not None
            else None
        ),
    }


NAN_HINT = "Try a lower rl.optim.lr or a smaller rl.kl_coef."


def _learner(cfg: RLSection, loop: TrainingLoop, policy, optimizer, scheduler, reference, model_path, dtype: str,
             credit: TurnCredit | None, seed: int, max_action_tokens: int) -> Learner:  # fmt: skip
    """The prepared policy with its reference, KL controller and (PPO) critic, which starts from the policy's
    weights with a fresh value head."""
    accelerator = loop.accelerator
    critic = critic_optimizer = None
    if cfg.algorithm == "ppo":
        critic = ValueModel.from_pretrained(model_path, dtype)
        critic_optimizer = build_optimizer(critic, cfg.optim, lr=cfg.critic_lr)
        critic, critic_optimizer = accelerator.prepare(critic, critic_optimizer)
        critic = loop.autocast_forward(critic)
    controller = (
        AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
        if cfg.adaptive_kl
        else FixedKLController(cfg.kl_coef)
    )
    return Learner(
        cfg=cfg,
        loop=loop,
        policy=policy,
        sampler=accelerator.unwrap_model(policy),
        optimizer=optimizer,
        scheduler=scheduler,
        reference=reference.to(accelerator.device) if reference is not None else None,
        critic=critic,
        critic_optimizer=critic_optimizer,
        controller=controller,
        credit=credit,
        seed=seed,
        max_action_tokens=max_action_tokens,
    )


def train_rl(
    *,
    model_path: str | Path,
    tokenizer,
    task: Task,
    cfg: RLSection,
    out_dir: str | Path,
    seed: int,
    log: MetricsLog,
    logging: LoggingSection,
    resume: bool = False,
    env_factory: EnvFactory | None = None,
    credit: TurnCredit | None = None,
    reference_path: str | Path | None = None,
    stage: str = "rl",
    first_turn_temperature: float | None = None,
    dtype: str = "fp32",
) -> dict[str, Any]:
    """Train the policy at ``model_path``; the final policy goes to ``out_dir/model`` (critic: ``out_dir/critic``).

    The KL reference is ``reference_path`` (default: the starting policy). ``stage`` names the
    run in metrics.jsonl and the progress bar. ``first_turn_temperature`` samples the first turn
    of multi-turn episodes at its own temperature (0 = greedy); the "old" log-probs are then the
    policy's own at ``cfg.temperature``, so the clipped ratio starts at 1 on every token. ``dtype``
    (fp32, bf16) is the one the policy and reference weights load in.
    """
    out_dir, started = Path(out_dir), time.perf_counter()
    set_seed(seed)
    task.use_tokenizer(tokenizer)  # chat prompts are rendered by its chat template
    env_factory = env_factory or (lambda: SingleTurnEnv(task))
    policy = load_model(model_path, dtype)
    if cfg.lora.enabled:
        policy = apply_lora(policy, cfg.lora)
    # Scoring the reference costs a forward pass over every rollout, so it is loaded only when something
    # uses it (a KL penalty, the adaptive controller, SCoRe's per-attempt β) or the KL is asked for.
    measure_kl = cfg.kl_coef > 0 or cfg.adaptive_kl or credit is not None or cfg.log_reference_kl
    reference = load_model(reference_path or model_path, dtype).eval().requires_grad_(False) if measure_kl else None
    updates_per_iteration = cfg.epochs * math.ceil(
        cfg.prompts_per_iteration * cfg.samples_per_prompt / cfg.minibatch_size
    )
    loop = TrainingLoop(stage, out_dir, log, logging, cfg, hint=NAN_HINT, unit="iteration", started=started)
    accelerator = loop.accelerator
    # Under N processes each rank samples, scores and trains on its own 1/N of the prompts (with all
    # of their samples, so group advantages stay local); DDP averages the gradients.
    require_divisible("rl.prompts_per_iteration", cfg.prompts_per_iteration, loop.world)
    require_divisible("rl.minibatch_size", cfg.minibatch_size, loop.world)
    if cfg.micro_batch_size:
        require_divisible("rl.micro_batch_size", cfg.micro_batch_size, loop.world)
    all_reduce = (lambda t: global_sum(accelerator, t).to(t.dtype)) if loop.world > 1 else None
    policy, optimizer, scheduler = loop.prepare(policy, cfg.optim, cfg.iterations * updates_per_iteration)
    max_action_tokens = cfg.max_new_tokens * env_factory().max_turns
    learner = _learner(cfg, loop, policy, optimizer, scheduler, reference, model_path, dtype, credit, seed,
                       max_action_tokens)  # fmt: skip
    sampling = SamplingSection(
        temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, batch_size=learner.local_rollouts, stop=cfg.stop
    )
    if first_turn_temperature is not None:
        sampling = [sampling.model_copy(update={"temperature": first_turn_temperature}), sampling]
    val_problems = task.val[: cfg.eval_problems] if task.has_answers else []  # no answers: nothing to check
    state = {"kl_coef": float(learner.controller.value)}
    first = loop.resume(resume, state)
    learner.controller.value = state["kl_coef"]
    pool = generate_turn = None
    if cfg.generation_backend == "ray":
        from redraft.rollout.ray_workers import RayGenerationPool

        pool = RayGenerationPool(learner.sampler, tokenizer, workers=cfg.ray_workers)
        generate_turn = pool.turns(shard_size=cfg.samples_per_prompt)
    result: dict[str, Any] = {"final_val_accuracy": None}

    def iteration(n: int) -> str:
        t0 = time.perf_counter()
        # Sampled and scored in the update's precision, so the old and new log-probs of the ratio match.
        with loop.autocast():
            batch = rollout(learner, task, tokenizer, env_factory, sampling, generate_turn, n)
            t1 = time.perf_counter()
            scored = score_rollouts(learner, batch, resample_old_logp=first_turn_temperature is not None)
        advantages, returns = compute_advantages(
            cfg, batch, scored["kl_tokens"], learner.controller.value, scored["old_values"], credit, all_reduce
        )
        t2 = time.perf_counter()
        stats = update(learner, batch, advantages, returns, scored, n)
        if pool is not None:
            pool.load_weights(learner.sampler.state_dict())  # the next iteration samples from the updated policy
        t3 = time.perf_counter()
        seconds = {"generate_s": t1 - t0, "logprob_s": t2 - t1, "update_s": t3 - t2, "iteration_s": t3 - t0}
        metrics = iteration_metrics(learner, batch, scored["kl_tokens"], stats, seconds)
        if val_problems and (n % cfg.eval_every == 0 or n == cfg.iterations):
            result["final_val_accuracy"] = metrics["val_accuracy"] = greedy_accuracy(
                learner.sampler, tokenizer, task, val_problems, max_new_tokens=cfg.max_new_tokens, stop=cfg.stop
            )
        if n % cfg.log_every == 0 or "val_accuracy" in metrics:
            loop.write(n, metrics)
        state["kl_coef"] = float(learner.controller.value)
        return f"reward {metrics['reward']:.3f}" + (f" kl {metrics['kl']:.3f}" if measure_kl else "")

    def export() -> None:
        save_model(learner.sampler, tokenizer, loop.model_dir)
        if critic is not None:
            accelerator.unwrap_model(critic).save_pretrained(out_dir / "critic")

    critic = learner.critic
    parameters = list(policy.parameters()) + (list(critic.parameters()) if critic is not None else [])
    loop.run(
        first,
        iteration,
        Schedule.of(cfg, total=cfg.iterations),
        state,
        parameters,
        export=export,
        label=f"{stage} ({cfg.algorithm})" if credit is None else stage,
    )
    if pool is not None:
        pool.shutdown()
    return {
        "model_dir": str(loop.model_dir),
        "algorithm": cfg.algorithm,
        "iterations": loop.last_step,
        **result,
        "seconds": loop.seconds(),
    }
