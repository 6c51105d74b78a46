"""Which snippets of an abnormal video are labelled: z (official) or the joint evidence with the normality bank."""

from __future__ import annotations

import numpy as np

from lanp_vad.models.bank import build_bank
from lanp_vad.models.config import BankConfig, PseudoLabelConfig, preset
from lanp_vad.models.propagation import propagate_videos
from lanp_vad.models.snippet_ranking import joint_evidence, pseudo_label_videos, robust_units, smooth_on_graph


def video_with_event(rng: np.random.Generator, length: int, event: slice, dim: int = 16, shift: float = 1.0):
    """Stationary noisy features with ``event`` snippets moved by ``shift`` along one direction."""
    features = 0.5 + 0.05 * rng.standard_normal((length, dim))
    features[event, 0] += shift
    return features.astype(np.float32)


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


def test_robust_units_are_set_by_the_bulk_not_the_extremes() -> None:
    values = np.r_[np.linspace(-1, 1, 99), 1000.0]
    units = robust_units(values)
    assert abs(np.median(units)) < 1e-9 and 1 < units[98] < 3 and units[99] > 100


def test_the_joint_evidence_ranks_what_both_views_find_above_a_common_change_of_scene() -> None:
    """Every video holds a stretch unlike its own start and end; in the abnormal one it is also unlike every other
    video's seeds. Within the video, its own propagation sees both alike; the joint evidence ranks the event above
    the normal videos' change of scene, and the labels of an abnormal video follow it."""
    rng = np.random.default_rng(2)
    videos = [video_with_event(rng, 50, slice(20, 26), shift=2.0)]
    for _ in range(5):  # normal videos: a change of scene in the middle, which other videos' seeds show too
        video = video_with_event(rng, 50, slice(0, 0))
        video[18:28, 1] += 1.0
        video[:2, 1] += 1.0
        videos.append(video)
    config = preset("default")
    result = propagate_videos(videos, config.propagation)
    bank = build_bank(videos, BankConfig(enabled=True))
    evidence = smooth_on_graph(videos, bank.archive_distances(videos), config.propagation, 0.5)
    joint = joint_evidence(result.z, evidence)
    assert joint[0][20:26].min() > max(values[18:28].max() for values in joint[1:])
    pseudo = PseudoLabelConfig(abnormal_fraction=0.5, snippet_ratio=0.12)
    labels = pseudo_label_videos(result, pseudo, config.propagation, ranking=joint)
    for index in np.flatnonzero(labels.abnormal):
        chosen = set(np.flatnonzero(labels.snippet_labels[index]))
        assert len(chosen) == int(0.12 * 50) and (index != 0 or chosen <= set(range(19, 27)))
