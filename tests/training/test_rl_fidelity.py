"""The RL trainer's wiring of the algorithm choices, against reference values (issue 35).

- Dr. GRPO (loss_agg=seq_mean_token_sum_norm): the normaliser is the constant max_new_tokens ×
  attempts, not the minibatch's tensor width (which moves with prompt lengths).
- GRPO's scale_rewards="batch" and RLOO's sequence KL through ``compute_advantages``.
"""

from __future__ import annotations

import inspect
import itertools
from types import SimpleNamespace

import pytest
import torch

from redraft.algorithms import kl_penalty
from redraft.config import LoggingSection, RLSection
from redraft.envs import SingleTurnEnv
from redraft.envs.self_correction import SelfCorrectionEnv
from redraft.models import save_model
from redraft.training import rl as rl_module
from redraft.training import rl_update
from redraft.training.logging import MetricsLog


def _record_normalisers(monkeypatch) -> list[tuple[str, int, int]]:
    """Wrap the trainer's loss calls; each call records (which, tensor width, the normaliser it divides by)."""
    calls: list[tuple[str, int, int]] = []
    for name in ("ppo_policy_loss", "aggregate_loss"):
        real = getattr(rl_update, name)

        def wrapped(*args, _real=real, _name=name, **kwargs):
            bound = inspect.signature(_real).bind(*args, **kwargs)
            bound.apply_defaults()
            mask, max_len = bound.arguments["mask"], bound.arguments["max_len"]
            # aggregate_loss divides by max_len, or by the tensor width T when it is None
            calls.append((_name, mask.shape[-1], mask.shape[-1] if max_len is None else max_len))
            return _real(*args, **kwargs)

        monkeypatch.setattr(rl_update, name, wrapped)
    return calls


class AlternatingPromptEnv(SingleTurnEnv):
    """Every other episode's prompt is the problem stated twice: short and long prompts in one batch."""

    counter = itertools.count()

    def reset(self, example):
        prompt = super().reset(example)
        return prompt if next(self.counter) % 2 else f"{prompt} {prompt}"


def _train(tmp_path, model, tokenizer, task, env_factory, credit=None, **settings):
    save_model(model, tokenizer, tmp_path / "start")
    cfg = RLSection.model_validate(
        {
            "iterations": 1,
            "prompts_per_iteration": 4,
            "samples_per_prompt": 2,
            "max_new_tokens": 3,
            "minibatch_size": 1,
            "eval_problems": 0,
            "loss_agg": "seq_mean_token_sum_norm",
            "optim": {"lr": 1e-3, "warmup_steps": 0},
            **settings,
        }
    )
    rl_module.train_rl(
        model_path=tmp_path / "start",
        tokenizer=tokenizer,
        task=task,
        cfg=cfg,
        out_dir=tmp_path / "rl",
        seed=0,
        log=MetricsLog(tmp_path / "metrics.jsonl"),
        logging=LoggingSection(progress=False),
        env_factory=env_factory,
        credit=credit,
    )


def test_dr_grpo_normaliser_is_max_new_tokens_whatever_the_prompt_length(
    tmp_path, micro_model, tokenizer, micro_task, monkeypatch
):
    calls = _record_normalisers(monkeypatch)
    _train(
        tmp_path,
        micro_model,
        tokenizer,
        micro_task,
        lambda: AlternatingPromptEnv(micro_task),
        algorithm="grpo",
        kl_coef=0.01,
    )
    widths = {width for _, width, _ in calls}
    assert len(widths) > 1, "the minibatches should differ in width for this test to mean anything"
    # 8 minibatches of one sequence: a policy loss and a GRPO KL loss each, all divided by 3.
    assert [name for name, _, _ in calls].count("ppo_policy_loss") == 8
    assert [name for name, _, _ in calls].count("aggregate_loss") == 8
    assert {normaliser for _, _, normaliser in calls} == {3}


def test_dr_grpo_normaliser_counts_every_attempt_of_a_multi_turn_episode(
    tmp_path, micro_model, tokenizer, micro_task, monkeypatch
):
    calls = _record_normalisers(monkeypatch)
    credit = rl_module.TurnCredit(reward_weights=(0.0, 1.0), kl_coefs=(0.1, 0.01))
    _train(
        tmp_path,
        micro_model,
        tokenizer,
        micro_task,
        lambda: SelfCorrectionEnv(micro_task, attempts=2),
        credit=credit,
        algorithm="rloo",
    )
    assert len({width for _, width, _ in calls}) > 1
    # the policy loss and the per-attempt KL term: max_new_tokens 3 × 2 attempts
    assert {name for name, _, _ in calls} == {"ppo_policy_loss", "aggregate_loss"}
    assert {normaliser for _, _, normaliser in calls} == {6}


def _batch(scores, mask):
    return SimpleNamespace(scores=torch.tensor(scores), action_mask=torch.tensor(mask))


def test_rloo_folds_the_k1_sequence_kl_into_the_score_as_trl():
    mask = [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]
    old_logp = torch.tensor([[-1.0, -1.0], [-0.5, -0.5], [-1.0, -2.0], [-3.0, 0.0]])
    ref_logp = torch.tensor([[-2.0, -1.5], [-0.5, -1.5], [-1.0, -1.0], [-1.0, -7.0]])
    batch = _batch([1.0, 0.0, 1.0, 1.0], mask)
    cfg = RLSection(algorithm="rloo", samples_per_prompt=2, kl_estimator="k1")
    kl_tokens = kl_penalty(old_logp, ref_logp, cfg.kl_estimator) * batch.action_mask
    advantages, returns = rl_module.compute_advantages(cfg, batch, kl_tokens, 0.1, None)
    # k1 sums log π − log π_ref per sequence: 1.5, 1, −1, −2 (the padded token is masked out)
    # scores − 0.1 · KL = [0.85, −0.1, 1.1, 1.2]; leave-one-out within each pair: ±0.95, ∓0.1
    expected = torch.tensor([[0.95, 0.95], [-0.95, -0.95], [-0.1, -0.1], [0.1, 0.0]])
    torch.testing.assert_close(advantages, expected)
    assert returns is None
    # TRL's RLOO: rewards − β·Σ(old_logp − ref_logp), then r − (Σ_group r − r) / (G − 1)
    trl_rewards = batch.scores - 0.1 * ((old_logp - ref_logp) * batch.action_mask).sum(dim=1)
    grouped = trl_rewards.view(-1, 2)
    trl = (grouped - (grouped.sum(dim=1, keepdim=True) - grouped) / 1).reshape(-1)
    torch.testing.assert_close(advantages[:, 0], trl)
    # the default k3 estimate of the same tokens gives other advantages: the choice matters
    k3 = rl_module.compute_advantages(
        cfg.model_copy(update={"kl_estimator": "k3"}),
        batch,
        kl_penalty(old_logp, ref_logp, "k3") * batch.action_mask,
        0.1,
        None,
    )[0]
    assert not torch.allclose(k3, advantages)


@pytest.mark.parametrize(
    "scale, expected",
    [
        # group mean removed: [−2, 2, −0.5, 0.5]; batch std sqrt(8.75 / 3) = 1.707825 (+ 1e-4)
        ("batch", [-1.171012, 1.171012, -0.292753, 0.292753]),
        # the group's own std: 2.828427 and 0.707107 (+ 1e-4)
        ("group", [-0.707082, 0.707082, -0.707007, 0.707007]),
        (True, [-0.707082, 0.707082, -0.707007, 0.707007]),  # the former bool
        ("none", [-2.0, 2.0, -0.5, 0.5]),
        (False, [-2.0, 2.0, -0.5, 0.5]),
    ],
)
def test_grpo_scale_rewards_modes(scale, expected):
    cfg = RLSection(algorithm="grpo", samples_per_prompt=2, scale_rewards=scale)
    batch = _batch([0.0, 4.0, 1.0, 2.0], [[1.0]] * 4)
    advantages, _ = rl_module.compute_advantages(cfg, batch, torch.zeros(4, 1), 0.0, None)
    torch.testing.assert_close(advantages[:, 0], torch.tensor(expected), rtol=0, atol=1e-6)
