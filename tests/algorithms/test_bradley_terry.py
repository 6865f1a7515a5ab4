import math

import pytest
import torch

from redraft.algorithms import bradley_terry_loss, pairwise_accuracy


def test_loss_hand_computed():
    chosen, rejected = torch.tensor([2.0, 0.0, -1.0]), torch.tensor([0.0, 0.0, 1.0])
    # −log σ(d) for d = 2, 0, −2
    expected = (math.log1p(math.exp(-2)) + math.log(2) + math.log1p(math.exp(2))) / 3
    loss, stats = bradley_terry_loss(chosen, rejected)
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    assert stats["accuracy"].item() == pytest.approx(0.5)  # one win, one tie (half), one loss
    assert stats["reward_margin"].item() == pytest.approx(0.0)
    assert stats["chosen_reward"].item() == pytest.approx(1 / 3)


def test_margin_and_centring():
    chosen, rejected = torch.tensor([1.0]), torch.tensor([0.0])
    with_margin, _ = bradley_terry_loss(chosen, rejected, margin=torch.tensor([1.0]))
    assert with_margin.item() == pytest.approx(math.log(2))  # σ(1 − 0 − 1) = ½
    centred, _ = bradley_terry_loss(chosen, rejected, center_coef=0.01)
    assert centred.item() == pytest.approx(math.log1p(math.exp(-1)) + 0.01 * 1.0)


def test_gradient_pushes_chosen_up_and_rejected_down():
    chosen, rejected = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    loss, _ = bradley_terry_loss(chosen, rejected)
    loss.backward()
    assert chosen.grad.item() == pytest.approx(-0.5) and rejected.grad.item() == pytest.approx(0.5)


def test_pairwise_accuracy_and_shape_check():
    assert pairwise_accuracy(
        torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([0.0, 2.0, 4.0, -1.0])
    ).item() == pytest.approx(0.625)
    with pytest.raises(ValueError, match="differ"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))


def test_pairwise_accuracy_counts_a_tie_half_where_trl_counts_zero():
    chosen, rejected = torch.tensor([1.0, 1.0, 0.0, 2.0]), torch.tensor([1.0, 0.0, 0.0, 3.0])
    # win, tie, tie, loss: (1 + ½ + ½ + 0) / 4 = 0.5; TRL's mean(r_w > r_l) = 1 / 4
    assert pairwise_accuracy(chosen, rejected).item() == pytest.approx(0.5)
    trl = (chosen > rejected).float().mean()
    assert trl.item() == pytest.approx(0.25)
    # the gap is ½ · the share of tied pairs
    assert (pairwise_accuracy(chosen, rejected) - trl).item() == pytest.approx(0.5 * 2 / 4)
