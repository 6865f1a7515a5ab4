"""One RL loop for GRPO, RLOO, REINFORCE++ and PPO.

Each iteration: sample prompts -> episodes with the sampler (several samples per prompt; the
sampler's temperature-aware log-probs are the "old" log-probs) -> rewards from the environment ->
reference log-probs and per-token KL -> advantages (the algorithm's choice) -> minibatch epochs of
the clipped policy loss (+ the critic's clipped value loss for PPO) -> log, evaluate, checkpoint.

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
from accelerate.utils import broadcast_object_list, set_seed

from redraft.algorithms import (
    AdaptiveKLController,
    FixedKLController,
    aggregate_loss,
    aggregation_units,
    broadcast_to_tokens,
    entropy_from_logits,
    gae,
    group_advantages,
    kl_penalty,
    logprobs_from_logits,
    masked_mean,
    masked_whiten,
    per_turn_advantages,
    ppo_policy_loss,
    reinforce_pp_advantages,
    rloo_advantages,
    turns_to_tokens,
    uniform_group_share,
    value_loss,
)
from redraft.config import LoggingConfig, RLSection, SamplingConfig
from redraft.data.sequences import micro_batch_rows
from redraft.distributed import (
    gather_all,
    global_sum,
    mean_across_ranks,
    rank_share,
    require_divisible,
)
from redraft.envs.base import Environment, Episode, SingleTurnEnv
from redraft.errors import TrainingError
from redraft.evaluation.evaluate import greedy_accuracy
from redraft.models.build import load_model, save_model
from redraft.models.value import ValueModel
from redraft.rollout.episodes import run_episodes
from redraft.rollout.sampler import derive_seed
from redraft.tasks.base import Task
from redraft.training.checkpoint import (
    latest_checkpoint,
    require_finite_weights,
    save_checkpoint,
    start_or_resume,
)
from redraft.training.logging import (
    MetricsLog,
    finish_trackers,
    make_accelerator,
    progress_bar,
)
from redraft.training.optim import build_optimizer, build_scheduler

EnvFactory = Callable[[], Environment]


@dataclass(frozen=True)
class TurnCredit:
    """Per-attempt credit for multi-turn episodes, replacing the algorithm's own advantages.

    Attempt k's tokens get the leave-one-out advantage of ``reward_weights[k]·r_k`` (the last
    attempt also ``shaping_alpha·(r_K − r_1)``) and a k3-style KL term to the reference in the loss
    with coefficient ``kl_coefs[k]``. SCoRe Stage I: weights (0, 1), KL (β2, β1); Stage II:
    weights (1, 1), KL (β1, β1), α > 0.
    """

    reward_weights: tuple[float, ...]
    kl_coefs: tuple[float, ...]
    shaping_alpha: float = 0.0

    def __post_init__(self):
        if len(self.reward_weights) != len(self.kl_coefs):
            raise ValueError("TurnCredit needs one reward weight and one KL coefficient per attempt")


@dataclass
class RolloutBatch:
    """Episodes as right-padded tensors, all (N, L) unless noted."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    action_mask: torch.Tensor  # 1.0 on policy-generated tokens
    old_logp: torch.Tensor  # sampler log-probs at action tokens
    token_rewards: torch.Tensor  # each turn's reward on its last action token
    scores: torch.Tensor  # (N,) episode reward
    truncated: torch.Tensor  # (N,) any reply cut at max_new_tokens
    correct: torch.Tensor  # (N,) the last turn's checker verdict
    turn_ids: torch.Tensor  # (N, L) long: the turn of every token (0 on padding)
    turn_rewards: torch.Tensor  # (N, K) each turn's reward (0 for turns an episode did not reach)
    turn_correct: torch.Tensor  # (N, K) each turn's checker verdict

    def to(self, device) -> RolloutBatch:
        return RolloutBatch(**{name: value.to(device) for name, value in vars(self).items()})


def collate_episodes(episodes: list[Episode], pad_id: int, truncation_penalty: float = 0.0) -> RolloutBatch:
    width = max(len(e.token_ids()) for e in episodes)
    turns = max(len(e.turns) for e in episodes)
    n = len(episodes)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    action = torch.zeros((n, width))
    old_logp = torch.zeros((n, width))
    token_rewards = torch.zeros((n, width))
    scores, truncated, correct = torch.zeros(n), torch.zeros(n, dtype=torch.bool), torch.zeros(n)
    turn_ids = torch.zeros((n, width), dtype=torch.long)
    turn_rewards, turn_correct = torch.zeros((n, turns)), torch.zeros((n, turns))
    for i, episode in enumerate(episodes):
        ids = episode.token_ids()
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention[i, : len(ids)] = 1
        action[i, : len(ids)] = torch.tensor(episode.action_mask(), dtype=torch.float32)
        old_logp[i, : len(ids)] = torch.tensor(episode.logprobs())
        turn_ids[i, : len(ids)] = torch.tensor(episode.turn_ids())
        position = 0
        for k, turn in enumerate(episode.turns):
            position += len(turn.observation_ids) + len(turn.reply_ids)
            penalty = truncation_penalty if turn.finish_reason == "length" else 0.0
            # An empty reply has no token to carry its reward; it lands on the last context token.
            token_rewards[i, max(position - 1, 0)] += turn.reward - penalty
            scores[i] += turn.reward - penalty
            turn_rewards[i, k] = turn.reward - penalty
            turn_correct[i, k] = float(bool(turn.info.get("correct", turn.reward > 0)))
        truncated[i] = any(t.finish_reason == "length" for t in episode.turns)
        correct[i] = float(bool(episode.turns[-1].info.get("correct", episode.turns[-1].reward > 0)))
    return RolloutBatch(
        input_ids,
        attention,
        action,
        old_logp,
        token_rewards,
        scores,
        truncated,
        correct,
        turn_ids,
        turn_rewards,
        turn_correct,
    )


def sequence_logprobs(model, input_ids, attention_mask, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of every token given its prefix (column 0 is 0) and the logits that produced them."""
    device = next(model.parameters()).device
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    logp = logprobs_from_logits(logits, input_ids[:, 1:], temperature)
    return torch.cat([logp.new_zeros(len(logp), 1), logp], dim=1), logits


def compute_advantages(
    cfg: RLSection,
    batch: RolloutBatch,
    kl_tokens: torch.Tensor,
    kl_coef: float,
    values: torch.Tensor | None,
    credit: TurnCredit | None = None,
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(advantages per token, returns per token for the critic or None).

    Group advantages (GRPO, RLOO, per-turn credit) need only their group, which sits on one
    process; batch-wide whitening (REINFORCE++, PPO) sums over every process with ``all_reduce``.
    """
    mask, group = batch.action_mask, cfg.samples_per_prompt
    if credit is not None:
        per_turn = per_turn_advantages(batch.turn_rewards, group, credit.reward_weights, credit.shaping_alpha)
        return turns_to_tokens(per_turn, batch.turn_ids, mask), None
    if cfg.algorithm == "grpo":
        return broadcast_to_tokens(
            group_advantages(batch.scores, group, cfg.scale_rewards, all_reduce=all_reduce), mask
        ), None
    if cfg.algorithm == "rloo":
        penalised = batch.scores - kl_coef * (kl_tokens * mask).sum(dim=1)
        return broadcast_to_tokens(rloo_advantages(penalised, group), mask), None
    token_rewards = batch.token_rewards - kl_coef * kl_tokens * mask
    if cfg.algorithm == "reinforce_pp":
        return reinforce_pp_advantages(token_rewards, mask, cfg.gamma, all_reduce=all_reduce), None
    advantages, returns = gae(token_rewards, values, mask, cfg.gamma, cfg.lam)
    return masked_whiten(advantages, mask, all_reduce=all_reduce), returns


# All-zero rewards give every advantage 0 and the policy never moves: say so rather than train on silently.
ZERO_REWARD_WARNING_ITERATIONS = 5


def per_turn_metrics(batch: RolloutBatch, kl_tokens: torch.Tensor | None, group_size: int) -> dict[str, float]:
    """Each attempt's mean reward, checker accuracy, summed KL (when measured) and (with groups) share
    of groups whose rewards for it are all equal; ``delta`` = last − first accuracy."""
    turns = batch.turn_rewards.shape[1]
    if turns < 2:
        return {}
    metrics: dict[str, float] = {}
    for k in range(turns):
        on_turn = (batch.turn_ids == k).float() * batch.action_mask
        metrics[f"reward_t{k + 1}"] = float(batch.turn_rewards[:, k].mean())
        metrics[f"accuracy_t{k + 1}"] = float(batch.turn_correct[:, k].mean())
        if kl_tokens is not None:
            metrics[f"kl_t{k + 1}"] = float((kl_tokens * on_turn).sum(dim=1).mean())
        if group_size > 1:
            metrics[f"frac_reward_zero_std_t{k + 1}"] = uniform_group_share(batch.turn_rewards[:, k], group_size)
    metrics["delta"] = metrics[f"accuracy_t{turns}"] - metrics["accuracy_t1"]
    return metrics


def _check_finite(value: float, what: str, iteration: int, checkpoints: Path) -> None:
    if not math.isfinite(value):
        kept = latest_checkpoint(checkpoints)
        raise TrainingError(
            f"rl: {what} is {value} at iteration {iteration}; stopped. Last good checkpoint: {kept or 'none yet'}. "
            "Try a lower rl.optim.lr or a smaller rl.kl_coef."
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
    logging: LoggingConfig,
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
    out_dir = Path(out_dir)
    started = time.perf_counter()
    set_seed(seed)
    task.use_tokenizer(tokenizer)  # chat prompts are rendered by its chat template
    env_factory = env_factory or (lambda: SingleTurnEnv(task))
    # Dr. GRPO's constant normaliser (loss_agg=seq_mean_token_sum_norm): the most action tokens an episode
    # can have, not the minibatch's tensor width, which depends on prompt lengths and minibatch makeup.
    max_action_tokens = cfg.max_new_tokens * env_factory().max_turns
    policy = load_model(model_path, dtype)
    # Scoring the reference costs a forward pass over every rollout, so it is loaded only when something
    # uses it (a KL penalty, the adaptive controller, SCoRe's per-attempt β) or the KL is asked for.
    measure_kl = cfg.kl_coef > 0 or cfg.adaptive_kl or credit is not None or cfg.log_reference_kl
    reference = load_model(reference_path or model_path, dtype).eval().requires_grad_(False) if measure_kl else None
    group = cfg.samples_per_prompt
    rollouts = cfg.prompts_per_iteration * group
    updates_per_iteration = cfg.epochs * math.ceil(rollouts / cfg.minibatch_size)

    accelerator = make_accelerator(out_dir, logging, stage, cfg.model_dump(mode="json"))
    # Under N processes each rank samples, scores and trains on its own 1/N of the prompts (with all
    # of their samples, so group advantages stay local); DDP averages the gradients.
    rank, world = accelerator.process_index, accelerator.num_processes
    require_divisible("rl.prompts_per_iteration", cfg.prompts_per_iteration, world)
    require_divisible("rl.minibatch_size", cfg.minibatch_size, world)
    local_rollouts, local_minibatch = rollouts // world, cfg.minibatch_size // world
    all_reduce = (lambda t: global_sum(accelerator, t).to(t.dtype)) if world > 1 else None
    if reference is not None:
        reference = reference.to(accelerator.device)

    def global_share(mask: torch.Tensor, mode: str) -> float:
        """This rank's weight in a loss averaged over the whole minibatch (DDP averages over ranks)."""
        if world == 1:
            return 1.0
        units = aggregation_units(mask, mode)
        return float(world * units / global_sum(accelerator, units).clamp(min=1))

    optimizer = build_optimizer(policy, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.iterations * updates_per_iteration)
    policy, optimizer, scheduler = accelerator.prepare(policy, optimizer, scheduler)
    critic = critic_optimizer = None
    if cfg.algorithm == "ppo":
        critic = ValueModel.from_pretrained(model_path)
        critic_optimizer = build_optimizer(critic, cfg.optim, lr=cfg.critic_lr)
        critic, critic_optimizer = accelerator.prepare(critic, critic_optimizer)
    controller = (
        AdaptiveKLController(cfg.kl_coef, cfg.kl_target, cfg.kl_horizon)
        if cfg.adaptive_kl
        else FixedKLController(cfg.kl_coef)
    )
    sampling = SamplingConfig(
        temperature=cfg.temperature, max_new_tokens=cfg.max_new_tokens, batch_size=local_rollouts, stop=cfg.stop
    )
    turn_sampling = (
        sampling
        if first_turn_temperature is None
        else [sampling.model_copy(update={"temperature": first_turn_temperature}), sampling]
    )
    pad_id = tokenizer.pad_token_id
    checkpoints = out_dir / "checkpoints"
    val_problems = task.val[: cfg.eval_problems] if task.has_answers else []  # no answers: nothing to check

    first = 1
    state = start_or_resume(accelerator, checkpoints, stage, log, resume)
    if state is not None:
        first = state["step"] + 1
        controller.value = state["kl_coef"]

    unwrapped = accelerator.unwrap_model(policy)
    pool = generate_turn = None
    if cfg.generation_backend == "ray":
        from redraft.rollout.ray_workers import RayGenerationPool

        pool = RayGenerationPool(unwrapped, tokenizer, workers=cfg.ray_workers)
        generate_turn = pool.turns(shard_size=group)
    last_accuracy = None
    zero_reward_iterations = 0
    with progress_bar(logging.progress and accelerator.is_main_process) as bar:
        label = f"{stage} ({cfg.algorithm})" if credit is None else stage
        progress = bar.add_task(label, total=cfg.iterations, completed=first - 1, info="")
        iteration = first - 1
        for iteration in range(first, cfg.iterations + 1):
            t0 = time.perf_counter()
            rows = micro_batch_rows(len(task.train), cfg.prompts_per_iteration, seed, iteration - 1)
            examples = [task.train[r] for r in rank_share(rows, rank, world) for _ in range(group)]
            envs = [env_factory() for _ in examples]
            # One random stream per sample, named by its place in the global batch: the rollouts are
            # the same whether one process, N ranks or Ray actors sample them.
            first_row = rank * local_rollouts
            row_seeds = [derive_seed(seed, iteration, first_row + row) for row in range(local_rollouts)]
            episodes = run_episodes(
                unwrapped, tokenizer, envs, examples, turn_sampling, generate_turn=generate_turn, row_seeds=row_seeds
            )
            batch = collate_episodes(episodes, pad_id, cfg.truncation_penalty).to(accelerator.device)
            mask = batch.action_mask
            t1 = time.perf_counter()

            with torch.no_grad():
                if first_turn_temperature is not None:
                    batch.old_logp = (
                        sequence_logprobs(unwrapped, batch.input_ids, batch.attention_mask, cfg.temperature)[0] * mask
                    )
                if reference is not None:
                    ref_logp, _ = sequence_logprobs(reference, batch.input_ids, batch.attention_mask, cfg.temperature)
                    kl_tokens = kl_penalty(batch.old_logp, ref_logp, cfg.kl_estimator) * mask
                else:  # β = 0: the penalty is zero whatever the KL, and the advantages are unchanged
                    kl_tokens = torch.zeros_like(batch.old_logp)
                old_values = critic(batch.input_ids, batch.attention_mask) if critic is not None else None
                token_kl_coefs = (
                    turns_to_tokens(mask.new_tensor(credit.kl_coefs).expand(len(mask), -1), batch.turn_ids, mask)
                    if credit is not None
                    else None
                )
            advantages, returns = compute_advantages(
                cfg, batch, kl_tokens, controller.value, old_values, credit, all_reduce
            )
            t2 = time.perf_counter()

            stats: dict[str, list[float]] = {}
            for epoch in range(cfg.epochs):
                order = torch.randperm(
                    local_rollouts,
                    generator=torch.Generator().manual_seed(seed + 7919 * iteration + epoch + 104_729 * rank),
                )
                for start in range(0, local_rollouts, local_minibatch):
                    idx = order[start : start + local_minibatch]
                    ids, attn, mb_mask = batch.input_ids[idx], batch.attention_mask[idx], mask[idx]
                    width = int(attn.sum(dim=1).max())
                    ids, attn, mb_mask = ids[:, :width], attn[:, :width], mb_mask[:, :width]
                    logp, logits = sequence_logprobs(policy, ids, attn, cfg.temperature)
                    loss, policy_stats = ppo_policy_loss(
                        logp,
                        batch.old_logp[idx, :width],
                        advantages[idx, :width],
                        mb_mask,
                        cfg.clip_eps,
                        cfg.clip_eps_high,
                        cfg.loss_agg,
                        max_action_tokens,
                    )
                    if token_kl_coefs is not None:
                        kl_terms = token_kl_coefs[idx, :width] * kl_penalty(
                            logp, ref_logp[idx, :width], cfg.kl_estimator
                        )
                        loss = loss + aggregate_loss(kl_terms, mb_mask, cfg.loss_agg, max_action_tokens)
                    elif cfg.algorithm == "grpo" and controller.value > 0:
                        kl_loss = aggregate_loss(
                            kl_penalty(logp, ref_logp[idx, :width], cfg.kl_estimator),
                            mb_mask,
                            cfg.loss_agg,
                            max_action_tokens,
                        )
                        loss = loss + controller.value * kl_loss
                    _check_finite(loss.item(), "policy loss", iteration, checkpoints)
                    # Weighted by this rank's share, the mean over ranks (gradients and the logged
                    # loss alike) is the loss of the whole minibatch.
                    loss = loss * global_share(mb_mask, cfg.loss_agg)
                    accelerator.backward(loss)
                    grad_norm = accelerator.clip_grad_norm_(policy.parameters(), cfg.optim.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    with torch.no_grad():
                        entropy = masked_mean(entropy_from_logits(logits / cfg.temperature), mb_mask[:, 1:])
                    for key, value in {
                        "policy_loss": loss,
                        "grad_norm": grad_norm,
                        "entropy": entropy,
                        **policy_stats,
                    }.items():
                        stats.setdefault(key, []).append(float(value.detach() if torch.is_tensor(value) else value))
                    if critic is not None:
                        values = critic(ids, attn)
                        v_loss, v_stats = value_loss(
                            values, old_values[idx, :width], returns[idx, :width], mb_mask, cfg.value_clip_eps
                        )
                        _check_finite(v_loss.item(), "value loss", iteration, checkpoints)
                        v_loss = v_loss * global_share(mb_mask, "token_mean")
                        accelerator.backward(v_loss)
                        accelerator.clip_grad_norm_(critic.parameters(), cfg.optim.grad_clip)
                        critic_optimizer.step()
                        critic_optimizer.zero_grad(set_to_none=True)
                        for key, value in {"value_loss": v_loss, **v_stats}.items():
                            stats.setdefault(key, []).append(float(value.detach() if torch.is_tensor(value) else value))
            updated = list(policy.parameters()) + (list(critic.parameters()) if critic is not None else [])
            require_finite_weights(updated, stage, iteration, checkpoints)
            if pool is not None:
                pool.load_weights(unwrapped.state_dict())  # the next iteration samples from the updated policy
            t3 = time.perf_counter()

            # Per-sequence numbers of the whole global batch (every rank's share, in rank order).
            scores, correct, truncated, kl_sums, lengths = gather_all(
                accelerator,
                torch.stack(
                    [
                        batch.scores,
                        batch.correct,
                        batch.truncated.float(),
                        (kl_tokens * mask).sum(dim=1),
                        mask.sum(dim=1),
                    ],
                    dim=1,
                ),
            ).unbind(dim=1)
            kl_per_sequence = float(kl_sums.mean())
            controller.update(kl_per_sequence, rollouts)
            zero_reward_iterations = zero_reward_iterations + 1 if not bool(scores.any()) else 0
            if zero_reward_iterations == ZERO_REWARD_WARNING_ITERATIONS:
                accelerator.print(
                    f"{stage}: warning: every reward was 0 for {zero_reward_iterations} iterations in a row, so "
                    "nothing is learned; check task.reward and that a reply can match the answers "
                    "(format, max_new_tokens)"
                )
            metrics = {
                "reward": float(scores.mean()),
                "reward_std": float(scores.std()),
                # Every rank's share is whole groups, so the gathered scores keep each group together.
                **({"frac_reward_zero_std": uniform_group_share(scores, group)} if group > 1 else {}),
                "accuracy": float(correct.mean()),
                **({"kl": kl_per_sequence} if measure_kl else {}),
                "kl_coef": float(controller.value),
                "response_length": float(lengths.mean()),
                "truncated_fraction": float(truncated.mean()),
                **mean_across_ranks(
                    accelerator,
                    {
                        **per_turn_metrics(batch, kl_tokens if measure_kl else None, group),
                        **{key: sum(values) / len(values) for key, values in stats.items()},
                        "generate_s": t1 - t0,
                        "logprob_s": t2 - t1,
                        "update_s": t3 - t2,
                        "iteration_s": t3 - t0,
                    },
                ),
            }
            if val_problems and (iteration % cfg.eval_every == 0 or iteration == cfg.iterations):
                last_accuracy = greedy_accuracy(
                    unwrapped, tokenizer, task, val_problems, max_new_tokens=cfg.max_new_tokens, stop=cfg.stop
                )
                metrics["val_accuracy"] = last_accuracy
            if iteration % cfg.log_every == 0 or "val_accuracy" in metrics:
                log.write(stage, iteration, **metrics)
                accelerator.log({f"{stage}/{k}": v for k, v in metrics.items()}, step=iteration)
            out_of_time = cfg.max_seconds is not None and time.perf_counter() - started >= cfg.max_seconds
            if world > 1:  # rank 0's clock decides, so all ranks stop (and checkpoint) together
                out_of_time = broadcast_object_list([out_of_time])[0]
            if iteration % cfg.save_every == 0 or iteration == cfg.iterations or out_of_time:
                save_checkpoint(
                    accelerator, checkpoints, iteration, {"kl_coef": float(controller.value)}, cfg.keep_checkpoints
                )
            bar.update(
                progress,
                completed=iteration,
                info=f"reward {metrics['reward']:.3f}" + (f" kl {kl_per_sequence:.3f}" if measure_kl else ""),
            )
            if out_of_time:
                break

    if pool is not None:
        pool.shutdown()
    if accelerator.is_main_process:
        save_model(unwrapped, tokenizer, out_dir / "model")
        if critic is not None:
            accelerator.unwrap_model(critic).save_pretrained(out_dir / "critic")
    accelerator.wait_for_everyone()
    finish_trackers(accelerator)
    return {
        "model_dir": str(out_dir / "model"),
        "algorithm": cfg.algorithm,
        "iterations": iteration,
        "final_val_accuracy": last_accuracy,
        "seconds": time.perf_counter() - started,
    }
