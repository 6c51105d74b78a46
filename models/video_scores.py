"""How abnormal a whole video looks from its propagated normality z, with or without a null model of length.

The official score is std(z): a video whose middle resembles its normal start and end has a flat z. But z is a
normalised propagation whose total mass barely depends on the content (mean(z) * T is nearly constant: 366 / 376
/ 385 at the 5th / 50th / 95th percentile of the official ShanghaiTech output), so std(z) shrinks roughly as 1/T
and ranks videos mostly by length (Spearman -0.89 with T there).

The null model removes that: ``null_normality(T)`` is the temporal-only propagation of a featureless video of
length T on the same graph (same seeds, window, alpha, solver), i.e. what z is when only position matters. It
depends on T and the graph settings alone and is cached per T. Scores:

- ``std``: std(z) (the official code);
- ``std_ratio``: std(z) / std(z_null(T)): how much more uneven z is than position alone makes it;
- ``decorrelation``: 1 - Pearson corr(z, z_null) over the snippets between the seeds: how far the shape of z
  departs from the shape position alone gives it, whatever its scale (Spearman -0.15 with T on the official
  ShanghaiTech z, -0.2 on stationary synthetic normal videos, where the std ratio has -0.86);
- ``deficit``: the mean shortfall max(0, 1 - r) of r = (z / mean z) / (z_null / mean z_null) over the snippets
  between the seeds: the share of normality that does not reach snippets which position alone would reach;
- ``shape_deficit``: decorrelation x deficit: the missing share of normality, counted as far as the shape of z
  departs from position's. In a video shorter than the graph window (the demo's clips: 30 snippets, window 50)
  z_null is nearly flat between the seeds, so decorrelation alone is mostly noise there while the deficit keeps
  the depth of the dip that std(z) sees; the product of the two scale-free scores stays length-neutral.

A video whose every snippet is a seed (T <= 4 with the official seeds) has a constant null; the prior then says
all of it is normal and its score is 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lanp_vad.models.config import PropagationConfig, PseudoLabelConfig
from lanp_vad.models.propagation import propagate

_NULL_CACHE: dict[tuple[str, int], np.ndarray] = {}
_NULL_CACHE_LIMIT = 8192  # distinct (graph settings, T) pairs kept; each holds T floats
_SEED_EDGE = 2  # the deficit leaves out the first and last two snippets: the seeds, set to max(z) by the code


def _graph_key(config: PropagationConfig) -> str:
    """The settings the null depends on: everything but the feature affinity."""
    ignored = {"feature_similarity", "affinity", "sigma", "standardize"}
    return config.model_dump_json(exclude=ignored)


def null_normality(lengths: Sequence[int], config: PropagationConfig) -> dict[int, np.ndarray]:
    """z of a featureless video of each length in ``lengths`` (temporal graph only), computed once per T."""
    key = _graph_key(config)
    missing = sorted({int(length) for length in lengths if (key, int(length)) not in _NULL_CACHE})
    if missing:
        temporal = config.model_copy(update={"feature_similarity": False, "standardize": False})
        blanks = [np.zeros((length, 1), dtype=np.float32) for length in missing]
        if len(_NULL_CACHE) + len(missing) > _NULL_CACHE_LIMIT:
            _NULL_CACHE.clear()
        for length, z in zip(missing, propagate(blanks, temporal), strict=True):
            z.setflags(write=False)
            _NULL_CACHE[key, length] = z
    return {int(length): _NULL_CACHE[key, int(length)] for length in lengths}


def _std_ratio(z: np.ndarray, null: np.ndarray) -> float:
    return float(np.std(z)) / float(np.std(null)) if np.ptp(null) > 0 else 0.0


def _deficit(z: np.ndarray, null: np.ndarray) -> float:
    z, null = _between_seeds(z), _between_seeds(null)
    if np.ptp(null) == 0 or float(np.mean(z)) <= 0:
        return 0.0
    ratio = (z / np.mean(z)) / (null / np.mean(null))
    return float(np.maximum(0.0, 1.0 - ratio).mean())


def _decorrelation(z: np.ndarray, null: np.ndarray) -> float:
    z, null = _between_seeds(z), _between_seeds(null)
    if np.ptp(null) == 0 or np.ptp(z) == 0:
        return 0.0
    return float(1.0 - np.corrcoef(z, null)[0, 1])


def _between_seeds(values: np.ndarray) -> np.ndarray:
    return values[_SEED_EDGE:-_SEED_EDGE] if len(values) > 2 * _SEED_EDGE + 1 else values


def _shape_deficit(z: np.ndarray, null: np.ndarray) -> float:
    return _decorrelation(z, null) * _deficit(z, null)


_SCORES = {
    "std_ratio": _std_ratio,
    "deficit": _deficit,
    "decorrelation": _decorrelation,
    "shape_deficit": _shape_deficit,
}


def video_scores(z: Sequence[np.ndarray], pseudo: PseudoLabelConfig, propagation: PropagationConfig) -> np.ndarray:
    """One score per video (higher = more abnormal) by ``pseudo.video_score``."""
    values = [np.asarray(video, dtype=np.float64) for video in z]
    if pseudo.video_score == "std":
        return np.array([np.std(video) for video in values])
    nulls = null_normality([len(video) for video in values], propagation)
    score = _SCORES[pseudo.video_score]
    return np.array([score(video, nulls[len(video)]) for video in values])
