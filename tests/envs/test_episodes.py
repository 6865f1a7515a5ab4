import torch

from redraft.config import SamplingSection
from redraft.envs import Environment, SingleTurnEnv, StepResult
from redraft.rollout.batch import collate_episodes
from redraft.rollout.episodes import run_episodes


class TwoTurnEnv(Environment):
    """Asks, then asks again; rewards only the second reply (as self-correction will)."""

    max_turns = 2

    def reset(self, example):
        self.example, self.turn = example, 0
        return f"{example.question}="

    def step(self, reply):
        self.turn += 1
        if self.turn == 1:
            return StepResult("\nagain:", 0.0, False, {})
        return StepResult(None, 1.0 if reply.strip() == self.example.answer else 0.25, True, {"correct": False})


def test_single_turn_episode_tokens_and_reward(micro_model, tokenizer, micro_task):
    examples = micro_task.test[:4]
    envs = [SingleTurnEnv(micro_task) for _ in examples]
    episodes = run_episodes(
        micro_model,
        tokenizer,
        envs,
        examples,
        SamplingSection(temperature=1.0, max_new_tokens=5),
        torch.Generator().manual_seed(0),
    )
    for episode, example in zip(episodes, examples):
        (turn,) = episode.turns
        assert tokenizer.decode(turn.observation_ids) == micro_task.prompt(example)
        assert episode.action_mask() == [0] * len(turn.observation_ids) + [1] * len(turn.reply_ids)
        assert turn.reward == float(micro_task.check(turn.reply_text, example))


def test_custom_reward_function_gets_fields(micro_model, tokenizer, micro_task):
    seen = {}

    def reward(prompts, completions, answer, **fields):
        seen.update(fields, answer=answer)
        return [0.5] * len(completions)

    envs = [SingleTurnEnv(micro_task, reward) for _ in range(2)]
    episodes = run_episodes(micro_model, tokenizer, envs, micro_task.test[:2], SamplingSection(max_new_tokens=3))
    assert [e.total_reward for e in episodes] == [0.5, 0.5]
    assert seen["answer"] == [ex.answer for ex in micro_task.test[:2]] and "value" in seen


def test_multi_turn_episode_masks_turns_and_credits_rewards(micro_model, tokenizer, micro_task):
    examples = micro_task.test[:3]
    episodes = run_episodes(
        micro_model,
        tokenizer,
        [TwoTurnEnv() for _ in examples],
        examples,
        SamplingSection(temperature=1.0, max_new_tokens=4),
        torch.Generator().manual_seed(1),
    )
    again = tokenizer("\nagain:", add_special_tokens=False)["input_ids"]
    for episode in episodes:
        first, second = episode.turns
        assert second.observation_ids == again
        ids, mask, turns = episode.token_ids(), episode.action_mask(), episode.turn_ids()
        n1 = len(first.observation_ids) + len(first.reply_ids)
        assert ids == first.observation_ids + first.reply_ids + again + second.reply_ids
        assert mask == [0] * len(first.observation_ids) + [1] * len(first.reply_ids) + [0] * len(again) + [1] * len(
            second.reply_ids
        )
        assert turns == [0] * n1 + [1] * (len(ids) - n1)
        assert episode.total_reward in (1.0, 0.25)
    batch = collate_episodes(episodes, tokenizer.pad_token_id)
    for i, episode in enumerate(episodes):
        n = len(episode.token_ids())
        assert batch.token_rewards[i].nonzero().flatten().tolist() == [n - 1]  # the reward sits on turn 2's last token
        assert batch.action_mask[i, :n].tolist() == episode.action_mask()


def test_second_turn_logprobs_condition_on_the_whole_context(micro_model, tokenizer, micro_task):
    examples = micro_task.test[:2]
    episodes = run_episodes(
        micro_model,
        tokenizer,
        [TwoTurnEnv() for _ in examples],
        examples,
        SamplingSection(temperature=1.0, max_new_tokens=4),
        torch.Generator().manual_seed(2),
    )
    for episode in episodes:
        ids = torch.tensor([episode.token_ids()])
        with torch.no_grad():
            logp = torch.log_softmax(micro_model(ids).logits[0, :-1], -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
        mask = torch.tensor(episode.action_mask()[1:], dtype=torch.bool)
        torch.testing.assert_close(torch.tensor(episode.logprobs()[1:])[mask], logp[mask], atol=1e-4, rtol=1e-4)
