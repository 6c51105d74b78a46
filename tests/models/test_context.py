"""The video context of the classifier: trailing means offline and streaming, the auto statistic, the head."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import ClassifierConfig
from lanp_vad.models.context import StreamingTrailingMean, between_video_share, trailing_mean
from lanp_vad.models.errors import InternalError


def _naive_trailing_mean(features: np.ndarray, window: int) -> np.ndarray:
    return np.stack([features[max(0, t - window + 1) : t + 1].mean(axis=0) for t in range(len(features))])


@pytest.mark.parametrize("window", [1, 4, 256])
def test_trailing_mean_offline_and_streaming_equal_the_definition(window: int) -> None:
    features = np.random.default_rng(window).normal(size=(40, 6)).astype(np.float32)
    expected = _naive_trailing_mean(features, window)
    np.testing.assert_allclose(trailing_mean(torch.from_numpy(features), window).numpy(), expected, atol=1e-6)
    streaming = StreamingTrailingMean(window)
    np.testing.assert_allclose(np.stack([streaming.add(row) for row in features]), expected, atol=1e-6)
    streaming.reset()  # a break in the sequence starts a new mean
    np.testing.assert_array_equal(streaming.add(features[5]), features[5])


def test_trailing_mean_keeps_precision_on_long_videos() -> None:
    features = (1000 + np.random.default_rng(1).normal(size=(20_000, 3))).astype(np.float32)
    means = trailing_mean(torch.from_numpy(features), 256).numpy()
    np.testing.assert_allclose(means[-1], features[-256:].astype(np.float64).mean(axis=0), rtol=1e-6)


def test_between_video_share_measures_per_video_offsets() -> None:
    rng = np.random.default_rng(2)
    same_scene = [rng.normal(size=(30, 8)) for _ in range(6)]
    offsets = [rng.normal(size=(30, 8)) + 20 * rng.normal(size=8) for _ in range(6)]
    assert between_video_share(same_scene) < 0.1
    assert between_video_share(offsets) > 0.9
    assert between_video_share([np.zeros((5, 2)), np.zeros((3, 2))]) == 0.0


def test_head_with_context_sees_the_difference_from_the_recent_past() -> None:
    config = ClassifierConfig(hidden=8, dropout=0.0, context="trailing_mean", context_window=3)
    model = create_classifier(dim=5, config=config, seed=0).eval()
    assert model.temporal.in_channels == 10
    features = torch.from_numpy(np.random.default_rng(3).normal(size=(2, 12, 5)).astype(np.float32))
    with torch.no_grad():
        inside = model(features)
        given = model(features, trailing_mean(features, 3))
        shifted = model(features + 7.0, trailing_mean(features + 7.0, 3))
        crops = model(features.unsqueeze(1).expand(2, 4, 12, 5))
    torch.testing.assert_close(inside, given)
    assert not torch.allclose(inside, shifted)  # the absolute features still count
    torch.testing.assert_close(crops, inside)  # every crop has its own trailing mean, scores averaged
    with pytest.raises(InternalError, match="resolved"):
        create_classifier(dim=5, config=ClassifierConfig(context="auto"))
