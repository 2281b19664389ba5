"""The detector's training losses against small hand-computed examples."""

import math

import pytest
import torch

from deepfake_hf.modeling_deepfake import alignment_loss, same_class_partners, slerp, uniformity_loss
from tests.conftest import tiny_detector

SQRT_HALF = math.sqrt(0.5)


def head_with_known_logits(**config):
    """A tiny detector whose head maps a feature vector [a, b, 0, ...] to the logits [a, b]."""
    model = tiny_detector("vit", **config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.zero_()
        model.classifier.weight[0, 0] = 1.0
        model.classifier.weight[1, 1] = 1.0
    return model


def features(*rows, width=32):
    out = torch.zeros(len(rows), width)
    out[:, : len(rows[0])] = torch.tensor(rows, dtype=torch.float32)
    return out


def test_cross_entropy_with_label_smoothing_matches_hand_computation():
    model = head_with_known_logits(label_smoothing=0.1)
    loss, logits = model.compute_loss(features([2.0, 0.0]), torch.tensor([0]))
    assert torch.allclose(logits[0, :2], torch.tensor([2.0, 0.0]))
    log_p_real = 2.0 - math.log(math.exp(2.0) + 1.0)
    log_p_fake = 0.0 - math.log(math.exp(2.0) + 1.0)
    # smoothing 0.1 over 2 classes: targets 0.95 (true class) and 0.05
    expected = -(0.95 * log_p_real + 0.05 * log_p_fake)
    assert loss.item() == pytest.approx(expected, abs=1e-6)

    plain = head_with_known_logits(label_smoothing=0.0)
    loss, _ = plain.compute_loss(features([2.0, 0.0]), torch.tensor([1]))
    assert loss.item() == pytest.approx(-log_p_fake, abs=1e-6)


def test_alignment_loss_is_mean_distance_power_over_same_label_pairs():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 1])  # one same-label pair: (0, 1) at distance sqrt(2)
    assert alignment_loss(z, labels, alpha=2.0).item() == pytest.approx(2.0, abs=1e-6)
    assert alignment_loss(z, labels, alpha=1.0).item() == pytest.approx(math.sqrt(2.0), abs=1e-6)
    labels = torch.tensor([0, 0, 0])  # pairs (0,1) sqrt2, (0,2) 2, (1,2) sqrt2 -> squared 2, 4, 2
    assert alignment_loss(z, labels, alpha=2.0).item() == pytest.approx(8.0 / 3.0, abs=1e-6)
    assert alignment_loss(z, torch.tensor([0, 1, 2])).item() == 0.0  # no same-label pair


def test_uniformity_loss_is_log_mean_gaussian_potential():
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])  # squared distances 2, 4, 2
    expected = math.log((2 * math.exp(-2 * 2.0) + math.exp(-2 * 4.0)) / 3)
    assert uniformity_loss(z, t=2.0).item() == pytest.approx(expected, abs=1e-6)
    expected_t1 = math.log((2 * math.exp(-2.0) + math.exp(-4.0)) / 3)
    assert uniformity_loss(z, t=1.0).item() == pytest.approx(expected_t1, abs=1e-6)


def test_slerp_interpolates_on_the_unit_circle():
    start = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    end = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    out = slerp(start, end, torch.tensor([0.5, 1.0 / 3.0, 0.3]))
    assert torch.allclose(out[0], torch.tensor([SQRT_HALF, SQRT_HALF]), atol=1e-6)
    # a third of the 90 degree arc is 30 degrees
    assert torch.allclose(out[1], torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6)]), atol=1e-6)
    assert torch.allclose(out[2], torch.tensor([0.0, 1.0]), atol=1e-6)  # identical endpoints stay put
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-6)
    ends = slerp(start[:1], end[:1], torch.tensor([0.0]))
    assert torch.allclose(ends, start[:1], atol=1e-6)


def test_same_class_partners_pick_another_row_of_the_same_label():
    labels = torch.tensor([0, 1, 0, 1, 1, 2])
    for seed in range(5):
        partners = same_class_partners(labels, generator=torch.Generator().manual_seed(seed))
        assert (labels[partners] == labels).all()
        assert (partners[:5] != torch.arange(5)).all()
        assert partners[5] == 5  # alone in its class: its own partner


def test_model_loss_adds_weighted_alignment_and_uniformity():
    weights = {"alignment_weight": 0.5, "uniformity_weight": 0.1}
    model = head_with_known_logits(label_smoothing=0.0, **weights)
    z = features([1.0, 0.0], [0.0, 1.0], [-1.0, 0.0])
    labels = torch.tensor([0, 0, 1])
    loss, logits = model.compute_loss(z, labels)
    ce = torch.nn.functional.cross_entropy(logits, labels).item()
    unit = z[:, :2]
    expected = ce + 0.5 * 2.0 + 0.1 * math.log((2 * math.exp(-4.0) + math.exp(-8.0)) / 3)
    assert loss.item() == pytest.approx(expected, abs=1e-5)
    assert alignment_loss(unit, labels).item() == pytest.approx(2.0, abs=1e-6)


def test_slerp_augmentation_adds_interpolated_rows_in_training_only():
    model = head_with_known_logits(normalize_features=True, slerp_augmentation=True)
    labels = torch.tensor([0, 0, 1, 1])
    # Same-class features are identical, so every interpolation equals its endpoints: loss = plain CE.
    z = features([1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0])
    model.train()
    model.dropout.p = 0.0
    loss, logits = model.compute_loss(z, labels)
    assert loss.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), abs=1e-6)
    # Distinct same-class features: the interpolated rows change the loss, but only in training mode.
    z = features([1.0, 0.0], [0.0, 1.0], [SQRT_HALF, SQRT_HALF], [-SQRT_HALF, SQRT_HALF])
    labels = torch.tensor([0, 0, 1, 1])
    torch.manual_seed(0)
    train_loss, logits = model.compute_loss(z, labels)
    plain = torch.nn.functional.cross_entropy(logits, labels).item()
    assert train_loss.item() != pytest.approx(plain, abs=1e-4)
    model.eval()
    eval_loss, _ = model.compute_loss(z, labels)
    assert eval_loss.item() == pytest.approx(plain, abs=1e-6)
