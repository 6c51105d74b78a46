"""Compact statistics of a model's training features, to tell at scoring time whether a video is like them.

A classifier trained on one camera scores footage of another camera arbitrarily (often every frame near 1), so
every result carries a ``domain_shift`` figure. The statistic is a principal subspace of the training snippets:
their mean and the leading principal directions that explain ``VARIANCE_KEPT`` of the variance. A snippet's
distance is the norm of its residual off that subspace (what the training archive never varied along); the
training snippets' own 99th percentile of that residual is the unit. A video's ``domain_shift`` is the median of
its snippets' distances in that unit. ``SHIFT_WARN_AT`` (3) lies between the figures of held-back footage of the
training camera and those of other cameras (``bench/domain_shift.py``, README "Domain-shift warning"), which this
statistic separates better than the Mahalanobis distance inside the subspace and the distance to the nearest
training snippet (the plain choice).

Stored as ``feature_stats.safetensors`` in the model directory (a few hundred KB, no pickle). Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save

STATS_FILE = "feature_stats.safetensors"
VARIANCE_KEPT = 0.9
MAX_COMPONENTS = 64
MAX_SNIPPETS = 20_000
REFERENCE_QUANTILE = 0.99
SHIFT_WARN_AT = 3.0


def _snippets(features: np.ndarray) -> np.ndarray:
    """(T, D) or (T, crops, D) -> (T, D) float64, crops averaged."""
    array = np.asarray(features, dtype=np.float64)
    return array.mean(axis=1) if array.ndim == 3 else array


@dataclass(frozen=True)
class FeatureStats:
    """Mean, principal directions (k, D) and the training residual quantile of one model's training features."""

    mean: np.ndarray
    components: np.ndarray
    reference: float

    def distances(self, features: np.ndarray) -> np.ndarray:
        """Each snippet's residual off the training subspace, in units of the training 99th percentile."""
        centred = _snippets(features) - self.mean
        residual = centred - (centred @ self.components.T) @ self.components
        return np.linalg.norm(residual, axis=1) / self.reference

    def shift(self, features: np.ndarray) -> float:
        """The video's domain-shift figure: the median of its snippets' distances (0 for no snippets)."""
        distances = self.distances(features)
        return float(np.median(distances)) if distances.size else 0.0

    def save(self, directory: str | Path) -> Path:
        """Write ``feature_stats.safetensors`` with the umask's mode (safetensors' ``save_file`` writes 0600, which
        the image's uid 10001 cannot read from a host-written model)."""
        path = Path(directory) / STATS_FILE
        tensors = {"mean": self.mean.astype(np.float32), "components": self.components.astype(np.float32),
                   "reference": np.asarray([self.reference], dtype=np.float64)}
        path.write_bytes(save(tensors, metadata={"format": "lanp-feature-stats", "statistic": "pca-residual"}))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> FeatureStats | None:
        """The stats of a model directory, or ``None`` for a model saved before they existed."""
        path = Path(directory) / STATS_FILE
        if not path.is_file():
            return None
        tensors = load_file(str(path))
        return cls(tensors["mean"].astype(np.float64), tensors["components"].astype(np.float64),
                   float(tensors["reference"][0]))


def fit_feature_stats(arrays: list[np.ndarray], *, seed: int = 0) -> FeatureStats:
    """Statistics of the training snippets of ``arrays`` (per-video features), at most ``MAX_SNIPPETS`` of them
    drawn at random (seeded) so that a large archive costs one small SVD."""
    snippets = np.concatenate([_snippets(array) for array in arrays])
    if snippets.shape[0] > MAX_SNIPPETS:
        snippets = snippets[np.random.default_rng(seed).choice(snippets.shape[0], MAX_SNIPPETS, replace=False)]
    mean = snippets.mean(axis=0)
    _, singular, directions = np.linalg.svd(snippets - mean, full_matrices=False)
    explained = np.cumsum(singular**2) / max(float(np.sum(singular**2)), 1e-12)
    count = int(min(MAX_COMPONENTS, np.searchsorted(explained, VARIANCE_KEPT) + 1, directions.shape[0]))
    stats = FeatureStats(mean, directions[:count], 1.0)
    reference = float(np.quantile(stats.distances(snippets), REFERENCE_QUANTILE))
    return FeatureStats(mean, directions[:count], max(reference, 1e-12))
