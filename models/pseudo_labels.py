"""Pseudo labels from propagated normality z: which videos are abnormal, which snippets, which normals to trust.

The rules of the official code: a video's score is std(z) (a flat z means the whole video resembles its normal
start and end; ``models.video_scores`` has the length-neutral one); the ``abnormal_fraction`` of videos with the
highest scores are abnormal, and in each of them the ``snippet_ratio`` share of snippets with the lowest z are
labelled 1 (``models.snippet_ranking``: the joint evidence instead of z); all other snippets are 0; the
``confident_normal_ratio`` share of the pseudo-normal videos with the lowest scores (at least
``min_confident_normal`` of them) form the normal list used by the loss re-weighting. Counts are
int(share * total), with a 1e-9 tolerance so that a fraction written as 64/238 selects 64 videos even though
64/238 * 238 is 63.99999999999999 in floating point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lanp_vad.models.config import PropagationConfig, PseudoLabelConfig
from lanp_vad.models.errors import ErrorKind, InternalError, UserError
from lanp_vad.models.video_scores import video_scores

_COUNT_TOLERANCE = 1e-9


def share_count(share: float, total: int) -> int:
    """int(share * total) as the official code computes it, robust to floating-point undershoot."""
    return int(math.floor(share * total + _COUNT_TOLERANCE))


@dataclass(frozen=True)
class PseudoLabels:
    """Video and snippet pseudo labels; indices refer to the order of the z list they were made from."""

    video_scores: np.ndarray
    abnormal: np.ndarray
    snippet_labels: list[np.ndarray]
    confident_normal: np.ndarray
    abnormal_fraction: float


def _two_means_split(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The split of sorted values into a low and a high group with the least within-group sum of squares."""
    ordered = np.sort(values)
    count = ordered.size
    prefix = np.cumsum(ordered)
    sizes = np.arange(1, count)
    left_mean = prefix[:-1] / sizes
    right_mean = (prefix[-1] - prefix[:-1]) / (count - sizes)
    between = sizes * (count - sizes) * (left_mean - right_mean) ** 2  # maximal where within is minimal
    cut = int(np.argmax(between)) + 1
    return ordered[:cut], ordered[cut:]


def estimate_abnormal_fraction(video_scores: np.ndarray, *, iterations: int = 200) -> float:
    """Estimate the share of abnormal videos from their scores std(z) alone.

    Fits a two-component 1-D Gaussian mixture with one shared variance to log std(z) by EM, started from the
    best two-means split, and returns the mixture weight of the higher-mean component. The shared variance
    matters: with free variances the likelihood prefers a "narrow core + wide tail" mixture over two groups of
    videos. On the official ShanghaiTech propagation output (63 of 238 abnormal = 0.265) it gives 0.222. Scores
    of zero are floored at the smallest positive one; the result is clipped to [1/N, 1 - 1/N].
    """
    scores = np.asarray(video_scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size < 2:
        raise UserError(
            f"need at least two video scores to estimate the abnormal share, got {scores.size}",
            kind=ErrorKind.TRAINING_DATA,
        )
    if not np.isfinite(scores).all() or (scores < 0).any():
        raise ValueError("video scores must be finite and non-negative")
    positive = scores[scores > 0]
    if positive.size == 0 or np.ptp(positive) == 0:
        return 0.5  # no spread: nothing distinguishes the videos
    values = np.log(np.maximum(scores, positive.min()))
    low, high = _two_means_split(values)
    means = np.array([low.mean(), high.mean()])
    spread = max((low.size * low.var() + high.size * high.var()) / values.size, 1e-6)
    weights = np.array([low.size, high.size], dtype=np.float64) / values.size
    for _ in range(iterations):
        log_density = (
            -0.5 * (values[:, None] - means) ** 2 / spread - 0.5 * np.log(2 * np.pi * spread) + np.log(weights)
        )
        log_density -= log_density.max(axis=1, keepdims=True)
        responsibility = np.exp(log_density)
        responsibility /= responsibility.sum(axis=1, keepdims=True)
        mass = responsibility.sum(axis=0) + 1e-12
        new_means = (responsibility * values[:, None]).sum(axis=0) / mass
        spread = max(float((responsibility * (values[:, None] - new_means) ** 2).sum()) / values.size, 1e-6)
        weights = mass / mass.sum()
        converged = np.allclose(new_means, means, atol=1e-10)
        means = new_means
        if converged:
            break
    high = int(np.argmax(means))
    share = float(weights[high])
    return min(max(share, 1 / scores.size), 1 - 1 / scores.size)


def make_pseudo_labels(
    z: list[np.ndarray],
    config: PseudoLabelConfig,
    propagation: PropagationConfig | None = None,
    *,
    snippet_normality: list[np.ndarray] | None = None,
) -> PseudoLabels:
    """Video scores, abnormal videos, 0/1 snippet labels (float32) and the confident normals, from z per video.

    ``propagation`` is the graph z came from; the length-neutral video scores need it for their null model.
    ``snippet_normality`` ranks the snippets of abnormal videos (lowest first) instead of z (see
    ``models.snippet_ranking``); the video scores always come from z.
    """
    if not z:
        raise UserError("no videos to pseudo-label", kind=ErrorKind.TRAINING_DATA)
    if config.video_score != "std" and propagation is None:
        raise InternalError(f"video_score={config.video_score} needs the propagation config for its null model")
    scores = video_scores(z, config, propagation or PropagationConfig())
    count = scores.size
    if config.abnormal_fraction == "auto":
        fraction = estimate_abnormal_fraction(scores)
    else:
        fraction = float(config.abnormal_fraction)
    abnormal_count = share_count(fraction, count)
    order = np.argsort(scores, kind="stable")  # lowest std first: most normal
    abnormal = np.zeros(count, dtype=bool)
    if abnormal_count:
        abnormal[order[count - abnormal_count :]] = True
    normal_count = count - abnormal_count
    confident_count = max(share_count(config.confident_normal_ratio, normal_count), config.min_confident_normal)
    confident = np.sort(order[: min(confident_count, normal_count)])
    ranking = z if snippet_normality is None else snippet_normality
    labels = []
    for index, values in enumerate(ranking):
        snippet = np.zeros(len(values), dtype=np.float32)
        if abnormal[index]:
            snippet[np.argsort(values, kind="stable")[: share_count(config.snippet_ratio, len(values))]] = 1
        labels.append(snippet)
    return PseudoLabels(scores, abnormal, labels, confident, fraction)
