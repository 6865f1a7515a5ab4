import torch

from redraft.config import SamplingSection
from redraft.envs import SelfCorrectionEnv
from redraft.rollout.episodes import run_episodes

INSTRUCTION = "\nfix: {prompt}"


def _episodes(model, tokenizer, task, examples, params, **env_kwargs):
    envs = [SelfCorrectionEnv(task, instruction=INSTRUCTION, **env_kwargs) for _ in examples]
    return run_episodes(model, tokenizer, envs, examples, params, torch.Generator().manual_seed(0))


def test_two_attempts_restate_the_problem_and_score_each_attempt(micro_model, tokenizer, micro_task):
    examples = micro_task.test[:6]
    episodes = _episodes(
        micro_model, tokenizer, micro_task, examples, SamplingSection(temperature=1.0, max_new_tokens=4)
    )
    for episode, example in zip(episodes, examples):
        second = episode.turns[1]
        prompt = micro_task.prompt(example)
        assert tokenizer.decode(second.observation_ids) == INSTRUCTION.format(prompt=prompt)
        for attempt, turn in enumerate(episode.turns, start=1):
            correct = micro_task.check(turn.reply_text, example)
            assert turn.info == {"correct": correct, "attempt": attempt}
            assert turn.reward == float(correct)


def test_reward_on_last_attempt_only_keeps_every_verdict(micro_model, tokenizer, micro_task):
    examples = micro_task.test[:4]
    # A checker-free reward makes attempt 1's reward visibly non-zero unless it is dropped.
    episodes = _episodes(
        micro_model,
        tokenizer,
        micro_task,
        examples,
        SamplingSection(max_new_tokens=3),
        reward_fn=lambda prompts, completions, **_: [0.5] * len(completions),
        reward_turns="last",
    )
    for episode in episodes:
        assert [t.reward for t in episode.turns] == [0.0, 0.5]
        assert all("correct" in t.info for t in episode.turns)


def test_per_turn_sampling_settings(micro_model, tokenizer, micro_task):
    """Attempt 1 sampled, attempt 2 greedy: attempt 2 is a deterministic function of the context."""
    examples = micro_task.test[:8]
    params = [SamplingSection(temperature=1.0, max_new_tokens=4), SamplingSection(temperature=0.0, max_new_tokens=4)]
    episodes = _episodes(micro_model, tokenizer, micro_task, examples, params)
    for episode in episodes:
        context = episode.token_ids()[: -len(episode.turns[1].reply_ids)]
        with torch.no_grad():
            logits = micro_model(input_ids=torch.tensor([context])).logits[0, -1]
        assert episode.turns[1].reply_ids[0] == int(logits.argmax())
    assert len({tuple(e.turns[0].reply_ids) for e in episodes}) > 1


def test_more_than_two_attempts(micro_model, tokenizer, micro_task):
    episodes = _episodes(
        micro_model, tokenizer, micro_task, micro_task.test[:2], SamplingSection(max_new_tokens=2), attempts=3
    )
    assert [len(e.turns) for e in episodes] == [3, 3]
    assert [t.info["attempt"] for t in episodes[0].turns] == [1, 2, 3]
