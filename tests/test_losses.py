"""Losses on points of the unit circle, whose values can be worked out by hand."""

import math

import pytest
import torch

from semcopy_lib.losses import CombinedLoss, CosineDistance, EuclideanDistance, InfoNCELoss, TripletLoss, mine_triplets


def circle(*degrees: float) -> torch.Tensor:
    rad = torch.tensor(degrees, dtype=torch.float64) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], dim=1).float().requires_grad_(True)


def d(deg: float) -> float:
    """Cosine distance between two unit vectors ``deg`` degrees apart."""
    return 1 - math.cos(math.radians(deg))


def test_triplet_all_by_hand():
    # class 0 at 0 and 60 degrees, class 1 at 30: both triplets (0,1,2) and (1,0,2) violate the margin
    loss = TripletLoss(margin=0.2)(circle(0, 60, 30), torch.tensor([0, 0, 1]))
    assert loss.item() == pytest.approx(d(60) - d(30) + 0.2, abs=1e-6)
    far = TripletLoss(margin=0.2)(circle(0, 60, 180), torch.tensor([0, 0, 1]))
    assert far.item() == 0.0


def test_triplet_hardest_by_hand():
    x, labels = circle(0, 90, 45, 180), torch.tensor([0, 0, 1, 1])
    a, p, n = mine_triplets(CosineDistance()(x, x), labels, "hardest")
    assert a.tolist() == [0, 1, 2, 3] and p.tolist() == [1, 0, 3, 2] and n.tolist() == [2, 2, 0, 1]
    # anchors 0 and 1: the other at 90 degrees, negative 2 at 45; anchor 2: positive 3 at 135,
    # negative 0 at 45; anchor 3 (180): positive 2 at 135 degrees, closest negative 1 at 90 degrees
    expected = ((d(90) - d(45) + 0.2) * 2 + (d(135) - d(45) + 0.2) + (d(135) - d(90) + 0.2)) / 4
    assert TripletLoss(margin=0.2, mining="hardest")(x, labels).item() == pytest.approx(expected, abs=1e-6)


def test_triplet_semihard_keeps_only_triplets_inside_the_margin():
    x, labels = circle(0, 60, 70, 200), torch.tensor([0, 0, 1, 1])
    a, p, n = mine_triplets(CosineDistance()(x, x), labels, "semihard", margin=0.2)
    dist = CosineDistance()(x, x)
    assert len(a) > 0
    assert torch.all(dist[a, n] > dist[a, p]) and torch.all(dist[a, n] < dist[a, p] + 0.2)


def test_triplet_with_no_valid_triplet_is_zero_and_differentiable():
    x = circle(0, 10, 20)
    for labels in (torch.tensor([0, 0, 0]), torch.tensor([0, 1, 2])):
        loss = TripletLoss()(x, labels)
        loss.backward()
        assert loss.item() == 0.0 and x.grad is not None and torch.all(x.grad == 0)


def test_triplet_takes_an_injected_distance():
    x = circle(0, 60, 30)
    loss = TripletLoss(distance=EuclideanDistance(), margin=0.1)(x, torch.tensor([0, 0, 1]))
    chord = lambda deg: 2 * math.sin(math.radians(deg) / 2)  # noqa: E731
    assert loss.item() == pytest.approx(chord(60) - chord(30) + 0.1, abs=1e-6)


def test_infonce_symmetric_by_hand():
    loss = InfoNCELoss(temperature=1.0)
    assert loss(circle(0, 90), circle(0, 90)).item() == pytest.approx(math.log(1 + math.exp(-1)), abs=1e-6)
    assert InfoNCELoss(temperature=0.5)(circle(0, 90), circle(0, 90)).item() == pytest.approx(
        math.log(1 + math.exp(-2)), abs=1e-6)
    # a = (0, 90), b = (0, 45): the two directions differ, the loss is their mean
    c = math.cos(math.radians(45))
    a_to_b = (math.log(1 + math.exp(c - 1)) + math.log(1 + math.exp(-c))) / 2
    b_to_a = (math.log(1 + math.exp(-1)) + math.log(2)) / 2
    assert loss(circle(0, 90), circle(0, 45)).item() == pytest.approx((a_to_b + b_to_a) / 2, abs=1e-6)
    assert loss(circle(0, 45), circle(0, 90)).item() == pytest.approx((a_to_b + b_to_a) / 2, abs=1e-6)


def test_infonce_does_not_count_same_class_pairs_as_negatives():
    a, b = circle(0, 90), circle(0, 90)
    assert InfoNCELoss(temperature=1.0)(a, b, torch.tensor([3, 3])).item() == pytest.approx(0.0, abs=1e-7)
    assert InfoNCELoss(temperature=1.0)(a, b, torch.tensor([3, 4])).item() == pytest.approx(
        math.log(1 + math.exp(-1)), abs=1e-6)


def test_learnable_temperature_gets_a_gradient():
    loss = InfoNCELoss(temperature=0.1, learnable=True)
    assert loss.temperature == pytest.approx(0.1)
    loss(circle(0, 30, 200), circle(5, 40, 190)).backward()
    assert loss.log_scale.grad is not None and loss.log_scale.grad.item() != 0.0


def test_combined_returns_weighted_parts_and_backpropagates():
    a, b, labels = circle(0, 60, 30), circle(5, 65, 35), torch.tensor([0, 0, 1])
    combined = CombinedLoss({"triplet": 0.3, "infonce": 0.7})
    parts = combined(a, b, labels, return_parts=True)
    assert set(parts) == {"triplet", "infonce", "loss"}
    triplet = TripletLoss()(torch.cat([a, b]), torch.cat([labels, labels]))
    infonce = InfoNCELoss()(a, b, labels)
    assert parts["triplet"].item() == pytest.approx(triplet.item()) and parts["triplet"].item() > 0
    assert parts["loss"].item() == pytest.approx(0.3 * triplet.item() + 0.7 * infonce.item(), abs=1e-6)
    parts["loss"].backward()
    assert a.grad is not None and torch.any(a.grad != 0)
    with pytest.raises(ValueError, match="unknown loss parts"):
        CombinedLoss({"tripplet": 1.0})


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs_give_float32_losses_close_to_full_precision(dtype):
    torch.manual_seed(0)
    a, b = torch.randn(8, 16), torch.randn(8, 16)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    combined = CombinedLoss()
    full = combined(a, b, labels)
    half = combined(a.to(dtype), b.to(dtype), labels)
    assert half.dtype == torch.float32 and half.item() == pytest.approx(full.item(), rel=2e-2)
