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
from lanp_vad.models.pseudo_labels import PseudoLabels, make_pseudo_labels
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


def pseudo_label_videos(
    features: Sequence[np.ndarray | torch.Tensor],
    result: Propagation,
    config: PseudoLabelConfig,
    propagation: PropagationConfig,
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> PseudoLabels:
    """Pseudo labels from a propagation: videos by their z, snippets by ``snippet_normality`` (and stage 2)."""
    normality = snippet_normality(result.z, result.prior, config, propagation)
    if config.second_stage:
        normality = second_stage(features, normality, propagation, device=device, seed=seed)
    return make_pseudo_labels(result.z, config, propagation, snippet_normality=normality)
