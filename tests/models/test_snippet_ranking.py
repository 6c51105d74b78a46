"""The method switches of issue 10: soft prior, z / z_null ranking, two-stage ranking, adaptive snippet labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanp_vad.models.config import PropagationConfig, PseudoLabelConfig, preset
from lanp_vad.models.prior import prior_vector
from lanp_vad.models.propagation import propagate_videos
from lanp_vad.models.pseudo_labels import abnormal_snippet_count, make_pseudo_labels
from lanp_vad.models.snippet_ranking import pseudo_label_videos, second_stage, smooth_on_graph, snippet_normality
from lanp_vad.models.video_scores import null_normality


def video_with_event(rng: np.random.Generator, length: int, event: slice, dim: int = 16, shift: float = 1.0):
    """Stationary noisy features with ``event`` snippets moved by ``shift`` along one direction."""
    features = 0.5 + 0.05 * rng.standard_normal((length, dim))
    features[event, 0] += shift
    return features.astype(np.float32)


def test_soft_prior_is_the_seed_resemblance_and_scale_free() -> None:
    rng = np.random.default_rng(0)
    features = torch.from_numpy(video_with_event(rng, 30, slice(12, 16)))
    seeds = np.array([0, 1, 28, 29])
    soft = PropagationConfig(prior="soft")
    y = prior_vector(features, seeds, soft).numpy()
    assert y[12:16].max() < 0.05 < 0.2 < np.delete(y, np.arange(12, 16)).min()
    np.testing.assert_allclose(prior_vector(features * 1000, seeds, soft).numpy(), y, rtol=1e-5)
    hard = prior_vector(features, seeds, PropagationConfig()).numpy()
    assert hard.tolist() == [1.0 if i in seeds else 0.0 for i in range(30)]


def test_soft_prior_keeps_the_paper_preset_informative_where_its_sigma_underflows() -> None:
    """sigma = 0.1 on features of this scale gives W = 0 (temporal graph alone): with the seed prior z / z_null is
    flat (z is the null itself), with the soft prior it still ranks the event first."""
    rng = np.random.default_rng(1)
    features = video_with_event(rng, 40, slice(20, 24), shift=4.0) * 100
    paper = preset("paper").propagation
    ratio = PseudoLabelConfig(snippet_score="null_ratio")
    for prior in ("seeds", "soft"):
        config = paper.model_copy(update={"prior": prior})
        result = propagate_videos([features], config)
        assert result.featureless == [0]
        (normality,) = snippet_normality(result.z, result.prior, ratio, config)
        if prior == "seeds":
            np.testing.assert_allclose(normality, 1.0, rtol=1e-6)
        else:
            assert set(np.argsort(normality)[:4]) == {20, 21, 22, 23}


def test_soft_prior_refuses_the_direct_ablation() -> None:
    with pytest.raises(ValueError, match="prior=soft"):  # a ConfigError, wrapped by pydantic
        PropagationConfig(prior="soft", method="direct")


def test_null_ratio_removes_what_position_gives() -> None:
    """z shaped like the null but for a shallow dip mid-way: z ranks the snippets by the seeds first (the null is
    lowest just inside them), z / z_null the dip."""
    config = preset("default")
    null = null_normality([40], config.propagation)[40]
    z = 3.0 * null.copy()
    z[20] *= 0.98
    assert z[20] > z.min()
    by_z = snippet_normality([z], [z], config.pseudo, config.propagation)[0]
    by_ratio = snippet_normality([z], [z], PseudoLabelConfig(snippet_score="null_ratio"), config.propagation)[0]
    assert np.argmin(by_ratio) == 20 and np.argmin(by_z) != 20


def test_snippets_by_prior_rank_the_event_first() -> None:
    rng = np.random.default_rng(2)
    videos = [video_with_event(rng, 50, slice(20, 26)), video_with_event(rng, 50, slice(0, 0))]
    config = preset("default")
    propagation = config.propagation.model_copy(update={"prior": "soft"})
    pseudo = config.pseudo.model_copy(update={"snippet_score": "prior", "snippet_ratio": 0.12})
    result = propagate_videos(videos, propagation)
    labels = pseudo_label_videos(videos, result, pseudo, propagation)
    abnormal = int(np.flatnonzero(labels.abnormal)[0])
    assert abnormal == 0 and set(np.flatnonzero(labels.snippet_labels[0])) == set(range(20, 26))


def test_second_stage_propagates_abnormality_from_the_least_normal_snippets() -> None:
    rng = np.random.default_rng(3)
    features = video_with_event(rng, 60, slice(30, 36), shift=0.5)
    config = preset("default").propagation.model_copy(update={"affinity": "adaptive"})
    stage_one = [np.where(np.arange(60) == 32, 0.0, 1.0)]  # one query inside the event
    (normality,) = second_stage([features], stage_one, config)
    outside = np.r_[0:28, 38:60]
    assert normality[30:36].max() < normality[outside].min()  # the abnormality reached the event, not its vicinity
    assert normality[32] == normality.min() and normality.max() <= 1


def test_smoothing_on_the_graph_averages_and_keeps_constants() -> None:
    rng = np.random.default_rng(4)
    features = video_with_event(rng, 40, slice(10, 14))
    config = preset("default").propagation
    (constant,) = smooth_on_graph([features], [np.full(40, 0.3)], config, 0.5)
    np.testing.assert_allclose(constant, 0.3, rtol=1e-6)
    spike = np.zeros(40)
    spike[20] = 1.0
    (smoothed,) = smooth_on_graph([features], [spike], config, 0.5)
    assert 0 < smoothed[20] < 1 and smoothed[19] > 0 and np.argmax(smoothed) == 20


@pytest.mark.parametrize(
    ("low", "length", "expected"),
    [(3, 20, 3), (1, 100, 5), (45, 60, 30)],  # the 2-means split, then the [5 %, 50 %] bounds
)
def test_adaptive_snippet_count_follows_the_split_within_bounds(low: int, length: int, expected: int) -> None:
    rng = np.random.default_rng(low)
    normality = np.concatenate([0.1 + 0.01 * rng.random(low), 1.0 + 0.01 * rng.random(length - low)])
    adaptive = PseudoLabelConfig(adaptive_snippet_ratio=True)
    assert abnormal_snippet_count(normality, adaptive) == expected
    assert abnormal_snippet_count(normality, PseudoLabelConfig()) == int(0.4 * length)


def test_adaptive_labels_pick_each_videos_own_share() -> None:
    short_event = np.concatenate([np.full(4, 0.1), np.ones(36)])
    long_event = np.concatenate([np.ones(5), np.full(15, 0.2), np.ones(20)])
    normal = np.ones(40) + 0.01 * np.arange(40)
    config = PseudoLabelConfig(abnormal_fraction=0.67, adaptive_snippet_ratio=True)
    scores = [np.r_[5.0, 1, 1, 5.0], np.r_[5.0, 1, 1, 5.0], np.r_[5.0, 5, 5, 5.0]]  # z: the first two vary most
    labels = make_pseudo_labels(scores, config, snippet_normality=[short_event, long_event, normal])
    assert labels.snippet_labels[0].sum() == 4 and labels.snippet_labels[1].sum() == 15
