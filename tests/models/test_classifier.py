"""The official temporal head: shapes, crop averaging, temporal context and reproducible initialisation."""

from __future__ import annotations

import pytest
import torch

from lanp_vad.models.classifier import LANPClassifier, create_classifier
from lanp_vad.models.config import ClassifierConfig

SMALL = ClassifierConfig(hidden=8, dropout=0.7)


def test_scores_one_value_per_snippet_in_unit_interval() -> None:
    model = create_classifier(dim=5, config=SMALL, seed=0).eval()
    scores = model(torch.randn(3, 11, 5) * 10)
    assert scores.shape == (3, 11)
    assert bool(((scores >= 0) & (scores <= 1)).all())


def test_crops_are_scored_separately_and_averaged() -> None:
    model = create_classifier(dim=4, config=SMALL, seed=1).eval()
    crops = torch.randn(2, 10, 7, 4)
    separate = torch.stack([model(crops[:, crop]) for crop in range(10)], dim=1).mean(dim=1)
    assert torch.allclose(model(crops), separate, atol=1e-6)
    # Averaging scores differs from scoring averaged features (the head is non-linear).
    assert not torch.allclose(model(crops), model(crops.mean(dim=1)), atol=1e-4)


def test_temporal_convolution_sees_only_neighbours() -> None:
    model = create_classifier(dim=3, config=SMALL, seed=2).eval()
    features = torch.randn(1, 9, 3)
    changed = features.clone()
    changed[0, 4] += 5.0
    difference = (model(features) - model(changed)).abs()[0]
    assert difference[3:6].gt(0).all()  # kernel 3: snippets 3, 4, 5 see snippet 4
    assert difference[[0, 1, 2, 6, 7, 8]].eq(0).all()


def test_dropout_only_in_training_and_seeded_initialisation() -> None:
    first, second = create_classifier(dim=6, seed=3), create_classifier(dim=6, seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert first.temporal.out_channels == 512 and first.dropout.p == 0.7  # the official head by default
    features = torch.randn(2, 5, 6)
    first.eval()
    assert torch.equal(first(features), first(features))
    first.train()
    assert not torch.equal(first(features), first(features))


def test_bad_shapes_are_refused() -> None:
    model = LANPClassifier(4, SMALL)
    with pytest.raises(ValueError, match="expected 4-d features"):
        model(torch.randn(1, 3, 5))
    with pytest.raises(ValueError, match=r"\(B, T, D\)"):
        model(torch.randn(3, 4))
    with pytest.raises(ValueError, match="odd"):
        LANPClassifier(4, ClassifierConfig(kernel_size=2))


def test_temporal_layer_equals_the_official_conv1d():
    """The unfolded-window GEMM must compute exactly what Conv1d(D, hidden, k, padding k//2) computes."""
    for kernel_size in (1, 3, 5):
        model = create_classifier(dim=24, config=ClassifierConfig(hidden=16, kernel_size=kernel_size), seed=3)
        features = torch.randn(2, 7, 24)
        expected = model.temporal(features.transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(model._temporal_conv(features), expected, rtol=1e-5, atol=1e-5)
