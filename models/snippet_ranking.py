"""Which snippets of a pseudo-abnormal video are abnormal: what they are ranked by.

The official code labels the lowest-z snippets. z is mostly shaped by position, though (it is highest at the
seeds and decays towards the middle whatever the content), so the lowest z is mostly "the middle of the video".
The default ranks them by the *joint evidence* (``joint_evidence``): how little normality the video's own
propagation brings a snippet (1 - z / max z) together with how far it is from the other videos' normal seeds (the
normality bank, ``models.bank``, smoothed on the video's graph by ``smooth_on_graph``): a snippet is labelled
abnormal where both views agree, so neither "the middle of the video" nor "unlike the other cameras" alone decides.
``smooth_on_graph`` is the propagation of any per-snippet values divided by the propagation of ones: a weighted
average over the graph, without the degree profile that dominates (I - alpha S)^-1 v at alpha near 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from lanp_vad.models.config import PropagationConfig, PseudoLabelConfig
from lanp_vad.models.propagation import Propagation, propagate
from lanp_vad.models.pseudo_labels import PseudoLabels, make_pseudo_labels

_TINY = 1e-12


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


def pseudo_label_videos(
    result: Propagation, config: PseudoLabelConfig, propagation: PropagationConfig,
    *, ranking: Sequence[np.ndarray] | None = None,
) -> PseudoLabels:
    """Pseudo labels from a propagation: videos by their z, the snippets of abnormal videos by z (the official
    rule) or by ``ranking`` (higher = more abnormal, e.g. ``joint_evidence``)."""
    normality = None if ranking is None else [-np.asarray(values, dtype=np.float64) for values in ranking]
    return make_pseudo_labels(result.z, config, propagation, snippet_normality=normality)
