"""SCoRe's training pieces: two-attempt SFT data (Pair-SFT, STaR) and the two RL stages.

Every two-attempt sequence is built from the exact tokens the model sees at run time (prompt,
attempt 1, correction instruction, attempt 2), so SFT and RL train the context that evaluation
decodes from.

- Pair-SFT: attempt 1 is the model's own sample (on-policy draft); attempt 2 is a correct
  answer: the demonstration where the checker accepts it, else the draft where that is right, else
  the row is dropped (an imperfect teacher's slip is never taught as a correction). Attempt-2
  tokens always carry loss; attempt-1 tokens carry loss when the draft is
  correct, so attempt 1 keeps being trained on right answers only (never on the wrong drafts, and
  not masked out entirely, which would handicap attempt 1 and inflate Δ). Optionally every
  attempt-1 token is also anchored to the SFT model (exact KL), since learning attempt 2 moves
  the shared weights and with them attempt 1.
- STaR: the model's own two-attempt samples, kept when attempt 1 was wrong and attempt 2 right;
  loss on attempt 2.
- Stage I: reward on attempt 2 only, strong KL (β2) on attempt 1, small KL (β1) on attempt 2.
- Stage II: reward on both attempts, bonus α·(r2 − r1) on attempt 2, KL β1 on both.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from redraft.algorithms import TurnCredit
from redraft.config import (
    LoggingSection,
    RLSection,
    SamplingSection,
    SelfCorrectionSection,
)
from redraft.data.sequences import TokenizedData, pack_sequences
from redraft.envs import Episode, SelfCorrectionEnv, Turn
from redraft.rollout.episodes import run_episodes
from redraft.rollout.sampler import generate_ids
from redraft.tasks.base import Example, Task
from redraft.text.tokenizer import encode_prompts
from redraft.training.logging import MetricsLog
from redraft.training.rl import train_rl

TrainedTurns = Callable[[Episode, int], bool]


def episodes_to_sft(
    episodes: list[Episode],
    trained: TrainedTurns,
    pad_id: int,
    max_length: int,
    anchored: TrainedTurns | None = None,
) -> TokenizedData:
    """Episodes as SFT rows: loss on the reply tokens of the turns ``trained(episode, k)`` selects;
    with ``anchored``, an anchor mask on the reply tokens of the turns it selects."""

    def reply_mask(episode: Episode, selected: TrainedTurns) -> list[int]:
        return [
            m
            for k, turn in enumerate(episode.turns)
            for m in [0] * len(turn.observation_ids) + [int(selected(episode, k))] * len(turn.reply_ids)
        ]

    sequences = [episode.token_ids() for episode in episodes]
    masks = [reply_mask(episode, trained) for episode in episodes]
    anchor_masks = [reply_mask(episode, anchored) for episode in episodes] if anchored else None
    return pack_sequences(sequences, masks, pad_id, max_length, anchor_masks)


def pair_sft_episodes(
    model,
    tokenizer,
    task: Task,
    examples: list[Example],
    protocol: SelfCorrectionSection,
    draft_temperature: float,
    max_new_tokens: int,
    seed: int,
    drafts_per_problem: int = 1,
    stop: Sequence[str] = (),
) -> list[Episode]:
    """On-policy drafts as attempt 1 (``drafts_per_problem`` samples of each problem, in a row, each ended by EOS, a
    ``stop`` string or ``max_new_tokens``), each followed by the instruction and a correct answer: the
    demonstration where the checker accepts it, else the draft where that is right. Rows with neither are
    left out, so an imperfect teacher's slips never become corrections."""
    examples = [example for example in examples for _ in range(drafts_per_problem)]
    prompts = encode_prompts(tokenizer, [task.prompt(ex) for ex in examples])
    drafts = generate_ids(
        model,
        tokenizer,
        prompts,
        SamplingSection(temperature=draft_temperature, max_new_tokens=max_new_tokens, stop=list(stop)),
        seed=seed,
    )
    envs = [SelfCorrectionEnv(task, protocol.attempts, protocol.instruction) for _ in examples]
    # One batch each (the environments installed any verifier).
    verdicts = task.check_many(drafts.texts, examples)
    target_verdicts = task.check_many([example.target for example in examples], examples)
    episodes = []
    for env, example, prompt_ids, draft_ids, draft_text, reason, correct, target_correct in zip(
        envs, examples, prompts, drafts.token_ids, drafts.texts, drafts.finish_reasons, verdicts, target_verdicts
    ):
        if not (target_correct or correct):
            continue
        answer = example.target if target_correct else draft_text
        env.reset(example)
        instruction_ids = tokenizer(env.correction_prompt(), add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        episodes.append(
            Episode(
                example,
                [
                    Turn(
                        prompt_ids,
                        draft_ids,
                        [],
                        draft_text,
                        reason,
                        float(correct),
                        {"correct": correct},
                    ),
                    Turn(
                        instruction_ids,
                        answer_ids,
                        [],
                        answer,
                        "eos",
                        1.0,
                        {"correct": True},
                    ),
                ],
            )
        )
    return episodes


def rebalance_wrong_drafts(episodes: list[Episode], wrong_share: float, seed: int) -> list[Episode]:
    """A subset of ``episodes`` in which wrong drafts make up ``wrong_share`` of the rows.

    Most of a good model's drafts are right, and copying a right draft is the cheap way down
    Pair-SFT's loss, so the natural mix can teach attempt 2 never to edit. Rows are dropped, never
    repeated: right drafts when wrong ones are scarcer than asked for, wrong ones otherwise. The
    kept rows stay in their original order.
    """
    if not 0.0 < wrong_share < 1.0:
        raise ValueError(f"wrong_share must lie strictly between 0 and 1, got {wrong_share}")
    wrong = [i for i, e in enumerate(episodes) if not draft_is_right(e)]
    right = [i for i, e in enumerate(episodes) if draft_is_right(e)]
    if not wrong or not right:
        return list(episodes)
    rng = random.Random(seed)
    right_wanted = round(len(wrong) * (1.0 - wrong_share) / wrong_share)
    if right_wanted <= len(right):
        right = rng.sample(right, right_wanted)
    else:
        wrong = rng.sample(wrong, round(len(right) * wrong_share / (1.0 - wrong_share)))
    return [episodes[i] for i in sorted(wrong + right)]


def draft_is_right(episode: Episode) -> bool:
    return bool(episode.turns[0].info["correct"])


def first_attempt(episode: Episode, turn: int) -> bool:
    """Pair-SFT's anchor: every attempt 1, right or wrong (the reference's distribution is the target)."""
    return turn == 0


def first_attempt_correct_or_later(episode: Episode, turn: int) -> bool:
    """Pair-SFT's loss: every correction, and attempt 1 only where the draft was right."""
    return turn > 0 or draft_is_right(episode)


def successful_corrections(episode: Episode) -> bool:
    return not draft_is_right(episode) and bool(episode.turns[-1].info["correct"])


def star_episodes(
    model,
    tokenizer,
    task: Task,
    examples: list[Example],
    protocol: SelfCorrectionSection,
    temperature: float,
    max_new_tokens: int,
    seed: int,
    stop: Sequence[str] = (),
) -> list[Episode]:
    """The model's own two-attempt samples that turned a wrong attempt 1 into a right attempt 2."""
    envs = [SelfCorrectionEnv(task, protocol.attempts, protocol.instruction) for _ in examples]
    params = SamplingSection(temperature=temperature, max_new_tokens=max_new_tokens, stop=list(stop))
    episodes = run_episodes(model, tokenizer, envs, examples, params, torch.Generator().manual_seed(seed))
    return [episode for episode in episodes if successful_corrections(episode)]


def train_self_correction_rl(
    *,
    model_path: str | Path,
    reference_path: str | Path | None,
    tokenizer,
    task: Task,
    cfg: RLSection,
    protocol: SelfCorrectionSection,
    out_dir: str | Path,
    seed: int,
    log: MetricsLog,
    logging: LoggingSection,
    stage: str,
    credit: TurnCredit | None,
    reward_turns: str = "all",
    reward_fn=None,
    resume: bool = False,
    first_turn_temperature: float | None = None,
    dtype: str = "fp32",
) -> dict[str, Any]:
    """RL on two-attempt episodes: SCoRe stages (with ``credit``) or naive multi-turn RL (``reward_turns="last"``).

    Each attempt is scored by the task's checker, or by ``reward_fn`` when given."""
    return train_rl(
        model_path=model_path,
        tokenizer=tokenizer,
        task=task,
        cfg=cfg,
        out_dir=out_dir,
        seed=seed,
        log=log,
        logging=logging,
        resume=resume,
        credit=credit,
        reference_path=reference_path,
        stage=stage,
        first_turn_temperature=first_turn_temperature,
        dtype=dtype,
        env_factory=lambda: SelfCorrectionEnv(
            task,
            protocol.attempts,
            protocol.instruction,
            reward_fn=reward_fn,
            reward_turns=reward_turns,
        ),
    )
