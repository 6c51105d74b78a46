"""How abnormal each snippet of one whole video looks from inside it: 1 - z / max(z), z the video's own
normality propagated from its start and end (the official rules), in numpy.

Training propagates every video of the archive (``models.propagation``, batched in torch). Scoring a whole video
offline propagates that video alone, with this numpy version of the same rules, so that the torch-free image
scores as a host with torch does: the window of Lw = min(2k, T) snippets (k = min(band_k, T - 1), shifted inside
the video at its borders), the RMS-distance affinity exp(-rms / (2 sigma^2)) times exp(-|i - j| / Lw), no
self-loops, W + W^T, zero degrees as one, S = D^-1/2 W D^-1/2, and conjugate gradient on (I - alpha S) z = y for the
seeds {0, 1, T-2, T-1} with SciPy's rules (x0 = 0; stop before an iteration once ||r|| < tol ||y||; at most
``maxiter`` iterations), then z < 0 -> 0 and the seeds -> max(z). A live stream has no end, so its scores go
without this evidence (``models.calibration``: the live calibration).
"""

from __future__ import annotations

import numpy as np

from lanp_vad.models.config import PropagationConfig

_ROWS = 1024  # snippets per block of the window products (bounds memory on long videos)


def _windows(length: int, band_k: int) -> np.ndarray:
    """(T, Lw) indices of each snippet's window, shifted inside the video at its borders."""
    window = min(2 * min(band_k, length - 1), length)
    starts = np.clip(np.arange(length) - window // 2, 0, length - window)
    return starts[:, None] + np.arange(window)[None, :]


def _window_weights(features: np.ndarray, columns: np.ndarray, sigma: float) -> np.ndarray:
    """W_ij = exp(-rms(xi - xj) / (2 sigma^2)) exp(-|i - j| / Lw) on each snippet's window, self-loops zero."""
    length, dim = features.shape
    window = columns.shape[1]
    norms = np.einsum("td,td->t", features, features)
    weights = np.empty(columns.shape)
    for start in range(0, length, _ROWS):
        rows = np.arange(start, min(start + _ROWS, length))
        low, high = int(columns[rows].min()), int(columns[rows].max()) + 1
        dots = features[rows] @ features[low:high].T
        near = np.take_along_axis(dots, columns[rows] - low, axis=1)
        squared = np.maximum(norms[rows, None] + norms[columns[rows]] - 2 * near, 0.0)
        weights[rows] = np.exp(-np.sqrt(squared / dim) / (2 * sigma**2))
    weights *= np.exp(-np.abs(columns - np.arange(length)[:, None]) / window)
    weights[columns == np.arange(length)[:, None]] = 0.0
    return weights


def propagate_one(features: np.ndarray, config: PropagationConfig) -> np.ndarray:
    """z of one (T, D) video by the official rules (see the module docstring), float64; T >= 3."""
    array = np.asarray(features, dtype=np.float64)
    length = len(array)
    columns = _windows(length, config.band_k)
    weights = _window_weights(array, columns, config.sigma)
    rows = np.repeat(np.arange(length), columns.shape[1])
    flat_columns, flat_weights = columns.ravel(), weights.ravel()
    degree = weights.sum(axis=1) + np.bincount(flat_columns, flat_weights, minlength=length)
    degree[degree == 0] = 1.0
    scale = 1.0 / np.sqrt(degree)

    def apply(vector: np.ndarray) -> np.ndarray:  # (I - alpha S) v
        scaled = scale * vector
        graph = (weights * scaled[columns]).sum(axis=1)
        graph += np.bincount(flat_columns, flat_weights * scaled[rows], minlength=length)
        return vector - config.alpha * scale * graph

    seeds = np.unique([0, 1, length - 2, length - 1])
    target = np.zeros(length)
    target[seeds] = 1.0
    z = np.zeros(length)
    residual = target.copy()
    direction = residual.copy()
    squared = residual @ residual
    bound = (config.cg_tol * np.linalg.norm(target)) ** 2
    for _ in range(config.cg_maxiter if config.cg_maxiter is not None else 10 * length):
        if squared < bound:
            break
        product = apply(direction)
        step = squared / (direction @ product)
        z += step * direction
        residual -= step * product
        previous, squared = squared, residual @ residual
        direction = residual + (squared / previous) * direction
    z[z < 0] = 0.0
    z[seeds] = z.max()
    return z


def within_abnormality(features: np.ndarray, config: PropagationConfig) -> np.ndarray:
    """1 - z / max(z) of one whole video's (T, D) or (T, crops, D) features (crops averaged); 0 below 3 snippets."""
    array = np.asarray(features, dtype=np.float64)
    if array.ndim == 3:
        array = array.mean(axis=1)
    if len(array) < 3:
        return np.zeros(len(array))
    z = propagate_one(array, config)
    return 1.0 - z / max(float(z.max()), 1e-12)
