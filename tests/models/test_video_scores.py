"""Video scores: the official std(z) ranks pure-normal videos by length, the null-model scores do not."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from lanp_vad.models import video_scores as scores_module
from lanp_vad.models.config import PseudoLabelConfig, preset
from lanp_vad.models.propagation import propagate
from lanp_vad.models.video_scores import null_normality, video_scores


def normal_video(rng: np.random.Generator, length: int, dim: int = 32) -> np.ndarray:
    """One normal scene whose statistics do not depend on its length: a fixed non-negative pattern, a stationary
    slow fluctuation (AR(1), correlation time ~10 snippets) and snippet noise, after a ReLU."""
    scene = np.abs(rng.normal(0.5, 0.2, dim))
    slow = np.zeros((length, dim))
    slow[0] = rng.normal(0, 0.03, dim)
    for index in range(1, length):
        slow[index] = 0.9 * slow[index - 1] + rng.normal(0, 0.03 * np.sqrt(1 - 0.81), dim)
    return np.maximum(scene + slow + rng.normal(0, 0.05, (length, dim)), 0).astype(np.float32)


@pytest.fixture(scope="module")
def normal_z() -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(3)
    lengths = rng.integers(12, 400, 60)
    z = propagate([normal_video(rng, int(length)) for length in lengths], preset("reference").propagation)
    return z, lengths


def test_official_score_follows_length_on_pure_normal_videos(normal_z) -> None:
    z, lengths = normal_z
    official = video_scores(z, PseudoLabelConfig(video_score="std"), preset("reference").propagation)
    assert spearmanr(official, lengths)[0] < -0.8  # std(z) ~ 1/T: a length detector


def test_the_null_score_is_length_neutral_on_pure_normal_videos(normal_z) -> None:
    z, lengths = normal_z
    neutral = video_scores(z, PseudoLabelConfig(video_score="decorrelation"), preset("reference").propagation)
    assert np.isfinite(neutral).all()
    assert abs(spearmanr(neutral, lengths)[0]) < 0.3


def test_a_middle_anomaly_raises_the_null_model_scores() -> None:
    rng = np.random.default_rng(5)
    normal = normal_video(rng, 120)
    abnormal = normal.copy()
    abnormal[50:70] += 1.0
    config = preset("reference").propagation
    z = propagate([normal, abnormal], config)
    for score in ("std", "decorrelation"):
        low, high = video_scores(z, PseudoLabelConfig(video_score=score), config)
        assert high > low, score


def test_null_is_the_temporal_only_propagation_and_is_cached_per_length() -> None:
    config = preset("reference").propagation
    scores_module._NULL_CACHE.clear()
    nulls = null_normality([30, 30, 7], config)
    temporal = config.model_copy(update={"feature_similarity": False})
    np.testing.assert_allclose(nulls[30], propagate([np.ones((30, 3), np.float32)], temporal)[0])
    assert len(scores_module._NULL_CACHE) == 2
    again = null_normality([30], config.model_copy(update={"affinity": "cosine"}))  # affinity: same null
    assert again[30] is nulls[30] and len(scores_module._NULL_CACHE) == 2


def test_videos_that_are_all_seeds_score_zero() -> None:
    config = preset("reference").propagation
    z = propagate([np.ones((4, 3), np.float32), np.ones((3, 3), np.float32)], config)
    assert video_scores(z, PseudoLabelConfig(video_score="decorrelation"), config).tolist() == [0.0, 0.0]
