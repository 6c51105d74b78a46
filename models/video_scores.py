"""How abnormal a whole video looks from its propagated normality z, with or without a null model of length.

The official score is std(z): a video whose middle resembles its normal start and end has a flat z. But z is a
normalised propagation whose total mass barely depends on the content (mean(z) * T is nearly constant: 366 / 376
/ 385 at the 5th / 50th / 95th percentile of the official ShanghaiTech output), so std(z) shrinks roughly as 1/T
and ranks videos mostly by length (Spearman -0.89 with T there).

The null model removes that: ``null_normality(T)`` is the temporal-only propagation of a featureless video of
length T on the same graph (same seeds, window, alpha, solver), i.e. what z is when only position matters. It
depends on T and the graph settings alone and is cached per T. Scores:

- ``std``: std(z) (the official code);
- ``decorrelation``: 1 - Pearson corr(z, z_null) over the snippets between the seeds: how far the shape of z
  departs from the shape position alone gives it, whatever its scale (Spearman -0.15 with T on the official
  ShanghaiTech z). Other scores against the null are measured by the harness (``pipeline.research.length_bias``).

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
_SEED_EDGE = 2  # the first and last two snippets: the seeds, set to max(z) by the code


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


def decorrelation(z: np.ndarray, null: np.ndarray) -> float:
    """1 - Pearson corr(z, z_null) between the seeds (0 when either is flat)."""
    z, null = between_seeds(z), between_seeds(null)
    if np.ptp(null) == 0 or np.ptp(z) == 0:
        return 0.0
    return float(1.0 - np.corrcoef(z, null)[0, 1])


def between_seeds(values: np.ndarray) -> np.ndarray:
    """The snippets between the seeds (the first and last two, set to max(z) by the code), when there are any."""
    return values[_SEED_EDGE:-_SEED_EDGE] if len(values) > 2 * _SEED_EDGE + 1 else values


def video_scores(z: Sequence[np.ndarray], pseudo: PseudoLabelConfig, propagation: PropagationConfig) -> np.ndarray:
    """One score per video (higher = more abnormal) by ``pseudo.video_score``."""
    values = [np.asarray(video, dtype=np.float64) for video in z]
    if pseudo.video_score == "std":
        return np.array([np.std(video) for video in values])
    nulls = null_normality([len(video) for video in values], propagation)
    return np.array([decorrelation(video, nulls[len(video)]) for video in values])
