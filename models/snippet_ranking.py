"""Which snippets of a pseudo-abnormal video are abnormal: the per-snippet normality they are ranked by.

The official code labels the lowest-z snippets. z is mostly shaped by position, though (it is highest at the
seeds and decays towards the middle whatever the content), so the lowest z is mostly "the middle of the video".
The alternatives (``pseudo.snippet_score``; lower = more abnormal in every case):

- ``z``: the official ranking;
- ``null_ratio``: z / z_null(T), with z_null the temporal-only propagation of the same length (see
  ``models.video_scores``): how much less normality a snippet receives than its position alone would give it;
- ``prior``: the propagation's right-hand side y itself; with ``propagation.prior=soft`` that is each snippet's
  resemblance to the seeds, before the graph smooths it (the naive seed contrast inside the chosen videos).

``second_stage`` (two-stage manifold ranking, Yang et al. CVPR 2013, the paper's reference [45]) then takes the
snippets whose normality is below their video's mean as abnormal queries, smooths their indicator on the same
graph (``smooth_on_graph`` at the graph's alpha) and ranks by that abnormality instead: the labels then follow
what the least-normal part looks like, not where it lies (the ``default`` preset's ranking since round 3).
``smooth_on_graph`` (also what self-training uses) is the propagation of any per-snippet values divided by the
propagation of ones: a weighted average over the graph, without the degree profile that dominates
(I - alpha S)^-1 v at alpha near 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lanp_vad.models.config import PropagationConfig, PseudoLabelConfig
from lanp_vad.models.propagation import Propagation, propagate
from lanp_vad.models.pseudo_labels import PseudoLabels, make_pseudo_labels, share_count
from lanp_vad.models.video_scores import null_normality

_TINY = 1e-12


def snippet_normality(
    z: Sequence[np.ndarray], priors: Sequence[np.ndarray], config: PseudoLabelConfig, propagation: PropagationConfig
) -> list[np.ndarray]:
    """Per-snippet normality of every video by ``config.snippet_score`` (before any second stage)."""
    values = [np.asarray(video, dtype=np.float64) for video in z]
    if config.snippet_score == "z":
        return values
    if config.snippet_score == "prior":
        return [np.asarray(prior, dtype=np.float64) for prior in priors]
    nulls = null_normality([len(video) for video in values], propagation)
    return [video / np.maximum(nulls[len(video)], _TINY) for video in values]


def second_stage(
    features: Sequence[np.ndarray | torch.Tensor],
    normality: Sequence[np.ndarray],
    propagation: PropagationConfig,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> list[np.ndarray]:
    """Stage-2 normality 1 - a, with a the abnormality smoothed on the graph from the below-mean snippets.

    a is ``smooth_on_graph`` of the query indicator at the graph's own alpha: dividing by the propagation of ones
    removes the degree profile that dominates (I - alpha S)^-1 q at alpha near 1 (well-connected snippets would
    otherwise receive the most abnormality whatever the queries).
    """
    queries = [(np.asarray(values) < np.mean(values)).astype(np.float64) for values in normality]
    abnormality = smooth_on_graph(features, queries, propagation, propagation.alpha, device=device, seed=seed)
    return [1.0 - a for a in abnormality]


def smooth_on_graph(
    features: Sequence[np.ndarray | torch.Tensor],
    values: Sequence[np.ndarray],
    propagation: PropagationConfig,
    alpha: float,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> list[np.ndarray]:
    """(I - alpha S)^-1 v / (I - alpha S)^-1 1 per video on the propagation graph: v averaged over its neighbours."""
    raw = propagation.model_copy(update={"postprocess": False, "alpha": alpha})
    ones = [np.ones(len(video)) for video in values]
    smoothed = propagate(features, raw, device=device, seed=seed, priors=[np.asarray(v, np.float64) for v in values])
    mass = propagate(features, raw, device=device, seed=seed, priors=ones)
    return [s / np.maximum(m, _TINY) for s, m in zip(smoothed, mass, strict=True)]


def bank_video_evidence(evidence: Sequence[np.ndarray], top: int) -> np.ndarray:
    """How abnormal each video looks from the other videos: the mean of its ``top`` highest bank evidences."""
    return np.array([np.sort(np.asarray(values, dtype=np.float64))[-top:].mean() for values in evidence])


def pseudo_label_videos(
    features: Sequence[np.ndarray | torch.Tensor],
    result: Propagation,
    config: PseudoLabelConfig,
    propagation: PropagationConfig,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    bank_evidence: Sequence[np.ndarray] | None = None,
    bank_top: int = 3,
    ranking: Sequence[np.ndarray] | None = None,
    fuse_video_scores: bool = True,
) -> PseudoLabels:
    """Pseudo labels from a propagation: videos by their z, snippets by ``snippet_normality`` (and stage 2).

    With ``bank_evidence`` (per snippet, higher = less like the other videos' normal seeds: ``models.bank``,
    smoothed on the graph) the video scores are fused with the bank's view of each video and the snippets of
    abnormal videos are ranked by the bank evidence (or by ``ranking``, e.g. the joint evidence) instead: the
    cross-video check of what the video looks like. ``fuse_video_scores`` False keeps LANP's own video scores.
    """
    if bank_evidence is not None:
        ranks = bank_evidence if ranking is None else ranking
        return make_pseudo_labels(
            result.z, config, propagation, snippet_normality=[-np.asarray(values) for values in ranks],
            video_evidence=bank_video_evidence(bank_evidence, bank_top) if fuse_video_scores else None,
        )  # fmt: skip
    normality = snippet_normality(result.z, result.prior, config, propagation)
    if config.second_stage:
        normality = second_stage(features, normality, propagation, device=device, seed=seed)
    return make_pseudo_labels(result.z, config, propagation, snippet_normality=normality)


def robust_units(values: np.ndarray) -> np.ndarray:
    """(x - median) / (IQR / 1.349): standard units that a few extreme snippets do not set."""
    low, median, high = np.quantile(values, [0.25, 0.5, 0.75])
    return (values - median) / max((high - low) / 1.349, _TINY)


def joint_evidence(z: Sequence[np.ndarray], bank_evidence: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per snippet, how abnormal it looks within its video and from the other videos, on one scale.

    Within: 1 - z / max(z), the normality the propagation did not bring it from its own video's seeds. Across:
    the bank evidence (its distance to the other videos' seeds, smoothed on the graph). Each is logged and put
    in robust standard units over the archive's snippets; the evidence is their mean, so a snippet is abnormal
    when both views agree, and neither view's scale dominates.
    """
    lengths = [len(values) for values in z]
    within = np.concatenate([1.0 - np.asarray(values) / max(float(np.max(values)), _TINY) for values in z])
    across = np.concatenate([np.asarray(values, dtype=np.float64) for values in bank_evidence])
    joint = (robust_units(np.log(within + 1e-3)) + robust_units(np.log(across + 1e-6 * (1 + np.median(across))))) / 2
    return np.split(joint, np.cumsum(lengths)[:-1])


def evidence_pseudo_labels(
    evidence: Sequence[np.ndarray], share: float, config: PseudoLabelConfig, *, top: int = 3
) -> PseudoLabels:
    """The ``share`` of all snippets with the highest evidence are abnormal, all others normal; a video is abnormal
    when any of its snippets is, and its score is the mean of its ``top`` highest evidences (the confident
    normals, for the loss re-weighting, are the lowest-scored of the others)."""
    values = [np.asarray(video, dtype=np.float64) for video in evidence]
    threshold = np.quantile(np.concatenate(values), 1 - share)
    labels = [(video >= threshold).astype(np.float32) for video in values]
    scores = np.array([np.sort(video)[-top:].mean() for video in values])
    abnormal = np.array([bool(label.any()) for label in labels])
    order = np.argsort(scores, kind="stable")  # every video may hold a labelled snippet: then the lowest-scored
    normal_order = [index for index in order if not abnormal[index]] or list(order)
    count = max(share_count(config.confident_normal_ratio, len(normal_order)), config.min_confident_normal)
    confident = np.sort(np.asarray(normal_order[: min(count, len(normal_order))], dtype=np.int64))
    return PseudoLabels(scores, abnormal, labels, confident, float(abnormal.mean()))
