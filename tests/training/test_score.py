"""SCoRe training pieces: two-attempt SFT data, per-attempt credit, and Stage I's anchor on attempt 1."""

import dataclasses

import pytest

from redraft.algorithms import stage_credit
from redraft.config import LoggingSection, RLSection, SelfCorrectionSection
from redraft.envs import Episode, Turn
from redraft.models import save_model
from redraft.rollout.episodes import run_episodes
from redraft.text.tokenizer import encode_prompts
from redraft.training.logging import MetricsLog
from redraft.training.score import (
    episodes_to_sft,
    first_attempt,
    first_attempt_correct_or_later,
    pair_sft_episodes,
    rebalance_wrong_drafts,
    successful_corrections,
    train_self_correction_rl,
)

PROTOCOL = SelfCorrectionSection(instruction="\nfix: {prompt}")


def test_pair_sft_rows_are_the_runtime_context_with_loss_on_right_answers_only(micro_model, tokenizer, micro_task):
    examples = micro_task.train[:16]
    episodes = pair_sft_episodes(micro_model, tokenizer, micro_task, examples, PROTOCOL, 1.0, 4, seed=0)
    data = episodes_to_sft(episodes, first_attempt_correct_or_later, tokenizer.pad_token_id, 128)
    for row, (episode, example) in enumerate(zip(episodes, examples)):
        draft, _correction = episode.turns
        prompt = encode_prompts(tokenizer, [micro_task.prompt(example)])[0]
        instruction = tokenizer(
            PROTOCOL.instruction.format(prompt=micro_task.prompt(example)),
            add_special_tokens=False,
        )["input_ids"]
        answer = tokenizer(example.answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        expected = prompt + draft.reply_ids + instruction + answer
        n = int(data.lengths[row])
        assert data.input_ids[row, :n].tolist() == expected
        draft_loss = [int(micro_task.check(draft.reply_text, example))] * len(draft.reply_ids)
        assert data.loss_mask[row, :n].tolist() == [0] * len(prompt) + draft_loss + [0] * len(instruction) + [1] * len(
            answer
        )
    # A random model's drafts are wrong: none of their tokens may be trained on.
    assert not any(e.turns[0].info["correct"] for e in episodes)


def test_pair_sft_anchor_marks_every_first_attempt_and_nothing_else(micro_model, tokenizer, micro_task):
    episodes = pair_sft_episodes(micro_model, tokenizer, micro_task, micro_task.train[:8], PROTOCOL, 1.0, 4, seed=0)
    plain = episodes_to_sft(episodes, first_attempt_correct_or_later, tokenizer.pad_token_id, 128)
    data = episodes_to_sft(
        episodes,
        first_attempt_correct_or_later,
        tokenizer.pad_token_id,
        128,
        anchored=first_attempt,
    )
    assert plain.anchor_mask is None
    assert data.loss_mask.equal(plain.loss_mask)
    for row, episode in enumerate(episodes):
        draft, correction = episode.turns
        start = len(draft.observation_ids)
        expected = [0] * start + [1] * len(draft.reply_ids)
        expected += [0] * (int(data.lengths[row]) - len(expected))
        assert data.anchor_mask[row, : int(data.lengths[row])].tolist() == expected


def test_pair_sft_never_teaches_a_demonstration_the_checker_rejects(micro_model, tokenizer, micro_task):
    # Exact matching, with each problem's answer set to the first line of the draft the model will write
    # (generation is seeded), so the checker accepts these drafts; every demonstration is a teacher's slip.
    task = dataclasses.replace(micro_task, match="exact")
    examples = task.train[:8]
    drafts = pair_sft_episodes(micro_model, tokenizer, task, examples, PROTOCOL, 1.0, 4, seed=0)
    answers = [e.turns[0].reply_text.splitlines()[0] if e.turns[0].reply_text.strip() else "x" for e in drafts]
    right = [dataclasses.replace(ex, answer=a, completion="slip") for ex, a in zip(examples[:4], answers[:4])]
    wrong = [dataclasses.replace(ex, completion="slip") for ex in examples[4:]]
    episodes = pair_sft_episodes(micro_model, tokenizer, task, right + wrong, PROTOCOL, 1.0, 4, seed=0)
    # Right drafts become the correction's target; wrong drafts with a slipped demonstration are left out.
    assert [e.example for e in episodes] == [ex for ex in right if task.check(answers[right.index(ex)], ex)]
    assert episodes, "the exact-match answers must accept some drafts"
    for episode in episodes:
        draft, correction = episode.turns
        assert draft.info["correct"] and correction.reply_text == draft.reply_text
        assert task.check(correction.reply_text, episode.example)


def test_pair_sft_samples_several_drafts_of_each_problem(micro_model, tokenizer, micro_task):
    examples = micro_task.train[:4]
    episodes = pair_sft_episodes(
        micro_model, tokenizer, micro_task, examples, PROTOCOL, 1.0, 4, seed=0, drafts_per_problem=3
    )
    assert [e.example for e in episodes] == [ex for ex in examples for _ in range(3)]
    # Each copy of a problem is its own sample, not the first draft repeated.
    drafts = [tuple(e.turns[0].reply_ids) for e in episodes]
    assert all(len(set(drafts[i : i + 3])) > 1 for i in range(0, len(drafts), 3))


def drafted(correct: list[bool]) -> list[Episode]:
    return [
        Episode(None, [Turn([1], [i], [], str(i), "eos", float(ok), {"correct": ok})]) for i, ok in enumerate(correct)
    ]


@pytest.mark.parametrize(
    ("right", "wrong", "share", "kept_right", "kept_wrong"),
    [
        (90, 10, 0.5, 10, 10),  # wrong drafts scarce: right ones are dropped
        (90, 10, 0.2, 40, 10),
        (10, 90, 0.5, 10, 10),  # wrong drafts plentiful: wrong ones are dropped
        (90, 10, 0.1, 90, 10),  # already the asked-for mix: nothing dropped
    ],
)
def test_rebalance_keeps_the_asked_share_of_wrong_drafts_without_repeating_rows(
    right, wrong, share, kept_right, kept_wrong
):
    episodes = drafted([True] * right + [False] * wrong)
    kept = rebalance_wrong_drafts(episodes, share, seed=0)
    oks = [e.turns[0].info["correct"] for e in kept]
    assert (oks.count(True), oks.count(False)) == (kept_right, kept_wrong)
    ids = [e.turns[0].reply_ids[0] for e in kept]
    assert ids == sorted(set(ids))  # distinct rows, in their original order
    assert rebalance_wrong_drafts(episodes, share, seed=0) == kept
    assert rebalance_wrong_drafts(episodes, share, seed=1) != kept or share == 0.1


def test_rebalance_leaves_a_one_sided_mix_alone_and_rejects_bad_shares():
    all_right = drafted([True] * 5)
    assert rebalance_wrong_drafts(all_right, 0.5, seed=0) == all_right
    with pytest.raises(ValueError, match="strictly between"):
        rebalance_wrong_drafts(all_right, 1.0, seed=0)


def test_stage_credits_follow_the_paper():
    one = stage_credit(1, 2, alpha=10.0, beta1=0.01, beta2=0.1)
    assert one.reward_weights == (0.0, 1.0) and one.kl_coefs == (0.1, 0.01) and one.shaping_alpha == 0.0
    two = stage_credit(2, 2, alpha=10.0, beta1=0.01, beta2=0.1)
    assert two.reward_weights == (1.0, 1.0) and two.kl_coefs == (0.01, 0.01) and two.shaping_alpha == 10.0


def digit_reward(prompts, completions, **fields):
    """1 when the reply starts with a digit: rare for a random model, quick to learn."""
    return [1.0 if c[:1].isdigit() else 0.0 for c in completions]


def _micro_rl(iterations: int, prompts: int, samples: int) -> RLSection:
    return RLSection(
        algorithm="rloo",
        iterations=iterations,
        prompts_per_iteration=prompts,
        samples_per_prompt=samples,
        max_new_tokens=2,
        eval_problems=0,
        optim={"lr": 1e-2, "warmup_steps": 0},
    )


def _self_correction_rl(tmp_path, model, tokenizer, task, cfg, stage, credit, **kwargs):
    save_model(model, tokenizer, tmp_path / "start")
    log = MetricsLog(tmp_path / "metrics.jsonl")
    result = train_self_correction_rl(
        model_path=tmp_path / "start",
        reference_path=None,
        tokenizer=tokenizer,
        task=task,
        cfg=cfg,
        protocol=PROTOCOL,
        out_dir=tmp_path / "rl",
        seed=0,
        log=log,
        logging=LoggingSection(progress=False),
        stage=stage,
        credit=credit,
        **kwargs,
    )
    return result, log.read(stage)


def _stage_one(tmp_path, model, tokenizer, task, beta2):
    credit = stage_credit(1, 2, alpha=0.0, beta1=0.0, beta2=beta2)
    cfg = _micro_rl(iterations=20, prompts=16, samples=8)
    return _self_correction_rl(
        tmp_path,
        model,
        tokenizer,
        task,
        cfg,
        "score_stage1",
        credit,
        reward_fn=digit_reward,
    )[1]


@pytest.mark.slow
def test_stage_one_keeps_attempt_one_near_the_base(tmp_path, micro_model, tokenizer, micro_task):
    free = _stage_one(tmp_path / "free", micro_model, tokenizer, micro_task, beta2=0.0)
    anchored = _stage_one(tmp_path / "anchored", micro_model, tokenizer, micro_task, beta2=1.0)
    assert all(
        k in free[-1]
        for k in (
            "reward_t1",
            "reward_t2",
            "accuracy_t1",
            "accuracy_t2",
            "delta",
            "kl_t1",
            "kl_t2",
            "frac_reward_zero_std",
            "frac_reward_zero_std_t2",
        )
    )
    assert all(0 <= r["frac_reward_zero_std_t2"] <= 1 for r in free)
    # Attempt 2 learns either way (rewarded); only the β2 anchor holds attempt 1 where it was.
    for run in (free, anchored):
        early, late = (
            sum(r["reward_t2"] for r in run[:3]) / 3,
            sum(r["reward_t2"] for r in run[-3:]) / 3,
        )
        assert late > early + 0.1, [r["reward_t2"] for r in run]
    drift_free = sum(r["kl_t1"] for r in free[-3:]) / 3
    drift_anchored = sum(r["kl_t1"] for r in anchored[-3:]) / 3
    assert drift_anchored < 0.5 * drift_free, (drift_anchored, drift_free)


@pytest.mark.parametrize("first_temperature", [0.0, 0.5])
def test_stage_one_can_sample_attempt_one_at_its_own_temperature(
    tmp_path, micro_model, tokenizer, micro_task, monkeypatch, first_temperature
):
    import redraft.training.rl as rl

    sampled = []

    def recording_run_episodes(*args, **kwargs):
        sampled.extend(episodes := run_episodes(*args, **kwargs))
        return episodes

    monkeypatch.setattr(rl, "run_episodes", recording_run_episodes)
    samples = 4
    _, records = _self_correction_rl(
        tmp_path,
        micro_model,
        tokenizer,
        micro_task,
        _micro_rl(iterations=1, prompts=4, samples=samples),
        "score_stage1",
        stage_credit(1, 2, alpha=0.0, beta1=0.01, beta2=0.1),
        first_turn_temperature=first_temperature,
    )
    drafts = [tuple(e.turns[0].reply_ids) for e in sampled]
    corrections = {tuple(e.turns[1].reply_ids) for e in sampled}
    if first_temperature == 0.0:
        # Greedy drafts: every sample of a prompt corrects the same attempt 1.
        assert all(len(set(drafts[i : i + samples])) == 1 for i in range(0, len(drafts), samples))
    assert len(corrections) > 1  # attempt 2 is still sampled
    # The old log-probs are the policy's own at rl.temperature, not the draft sampler's.
    assert records[0]["approx_kl"] < 1e-5 and records[0]["clipfrac"] == 0.0


def test_successful_corrections_selects_wrong_then_right():
    from redraft.envs import Episode, Turn
    from redraft.tasks.base import Example

    def episode(first, last):
        turns = [
            Turn([], [], [], "", "eos", info={"correct": first}),
            Turn([], [], [], "", "eos", info={"correct": last}),
        ]
        return Episode(Example("1+1", "2"), turns)

    assert [
        successful_corrections(episode(a, b)) for a, b in ((False, True), (True, True), (False, False), (True, False))
    ] == [True, False, False, False]


def test_naive_multiturn_rl_runs(tmp_path, micro_model, tokenizer, micro_task):
    cfg = _micro_rl(iterations=2, prompts=4, samples=2)
    result, records = _self_correction_rl(
        tmp_path,
        micro_model,
        tokenizer,
        micro_task,
        cfg,
        "multiturn_rl",
        None,
        reward_turns="last",
    )
    assert result["iterations"] == 2 and [r["step"] for r in records] == [1, 2]
