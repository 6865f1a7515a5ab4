import pytest
import torch

from redraft.config import FreezeSection, ModelSection
from redraft.errors import RedraftError
from redraft.models import save_model
from redraft.models.adapters import apply_freeze
from redraft.models.reward import (
    RewardStats,
    build_reward_model,
    load_reward_model,
    raw_scores,
    reward_inputs,
    save_reward_model,
)
from redraft.rewards.reward_model import RewardModelScorer


@pytest.fixture()
def sft_dir(tmp_path, micro_model, tokenizer):
    save_model(micro_model, tokenizer, tmp_path / "sft")
    return tmp_path / "sft"


def test_starts_from_the_sft_body_with_a_fresh_scalar_head(sft_dir, micro_model, tokenizer):
    reward_model = build_reward_model(tokenizer, ModelSection(path=str(sft_dir)))
    assert type(reward_model).__name__ == "LlamaForSequenceClassification" and reward_model.score.out_features == 1
    torch.testing.assert_close(reward_model.model.embed_tokens.weight, micro_model.model.embed_tokens.weight)
    fresh = build_reward_model(tokenizer, ModelSection(preset="micro"), fresh=True)
    assert fresh.config.hidden_size == 64 and fresh.config.pad_token_id == tokenizer.pad_token_id
    with pytest.raises(RedraftError, match="no HF checkpoint"):
        build_reward_model(tokenizer, ModelSection(path=str(sft_dir / "missing")))


def test_score_is_read_at_the_end_whatever_the_padding(sft_dir, tokenizer):
    reward_model = build_reward_model(tokenizer, ModelSection(path=str(sft_dir)))
    prompts, completions = ["1+2=", "13+45="], ["3", "58 and more text"]
    together = raw_scores(reward_model, reward_inputs(tokenizer, prompts, completions), batch_size=2)
    alone = torch.cat(
        [raw_scores(reward_model, reward_inputs(tokenizer, [p], [c])) for p, c in zip(prompts, completions)]
    )
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    assert together[0] != together[1]


def test_stats_normalise_and_survive_save_load(tmp_path, sft_dir, tokenizer):
    stats = RewardStats.of(torch.tensor([1.0, 3.0]))
    assert stats.mean == 2.0 and stats.std == pytest.approx(2**0.5)
    assert RewardStats.of(torch.tensor([5.0, 5.0])).std == 1.0
    torch.testing.assert_close(stats.normalise(torch.tensor([2.0])), torch.tensor([0.0]))

    reward_model = build_reward_model(tokenizer, ModelSection(path=str(sft_dir)))
    save_reward_model(reward_model, tokenizer, stats, tmp_path / "rm")
    loaded, loaded_stats = load_reward_model(tmp_path / "rm")
    assert loaded_stats == stats
    data = reward_inputs(tokenizer, ["1+1="], ["2"])
    raw = raw_scores(loaded, data)
    torch.testing.assert_close(raw, raw_scores(reward_model, data))

    scorer = RewardModelScorer(tmp_path / "rm")
    assert scorer(["1+1="], ["2"], answer=["2"]) == pytest.approx(stats.normalise(raw).tolist(), abs=1e-5)
    assert scorer([], []) == []
    with pytest.raises(RedraftError, match="reward_stats.json"):
        load_reward_model(sft_dir)


def test_freezing_applies_to_the_reward_model(sft_dir, tokenizer):
    reward_model = build_reward_model(tokenizer, ModelSection(path=str(sft_dir)))
    apply_freeze(reward_model, FreezeSection(embeddings=True, layers=1))
    assert not reward_model.model.embed_tokens.weight.requires_grad
    assert not any(p.requires_grad for p in reward_model.model.layers[0].parameters())
    assert reward_model.score.weight.requires_grad


def test_likelihood_head_scores_a_completion_by_its_log_probability(tmp_path, sft_dir, micro_model, tokenizer):
    reward_model = build_reward_model(tokenizer, ModelSection(path=str(sft_dir)), head="likelihood")
    prompts, completions = ["1+2=", "13+45="], ["3", "58 and more text"]
    data = reward_inputs(tokenizer, prompts, completions)
    scores = raw_scores(reward_model, data, batch_size=2)
    # By hand: Σ log p(token | prefix) over the completion's tokens and EOS, under the SFT model.
    expected = []
    for prompt, completion in zip(prompts, completions):
        alone = reward_inputs(tokenizer, [prompt], [completion])
        ids, targets = alone.input_ids[0].tolist(), alone.loss_mask[0].nonzero().flatten().tolist()
        with torch.no_grad():
            logp = torch.log_softmax(micro_model.eval()(torch.tensor([ids])).logits[0], dim=-1)
        assert len(targets) == len(tokenizer(completion, add_special_tokens=False)["input_ids"]) + 1  # + EOS
        expected.append(sum(logp[t - 1, ids[t]] for t in targets))
    torch.testing.assert_close(scores, torch.stack(expected), atol=1e-4, rtol=1e-4)

    save_reward_model(reward_model, tokenizer, RewardStats(), tmp_path / "rm")
    loaded, _ = load_reward_model(tmp_path / "rm")
    assert type(loaded).__name__ == "LlamaForCausalLM"
    torch.testing.assert_close(raw_scores(loaded, data), scores)
