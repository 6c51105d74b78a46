"""The propagation oracle: the official code's rules written out plainly, to check ``models.propagation`` against.

One implementation for the test (``tests/models/test_propagation.py``: equal to 1e-5) and the benchmark
(``bench/propagation.py``: the official-style baseline it is timed against). It keeps the official code's
structure: a Python loop over snippets computing each window's similarities with NumPy, a SciPy sparse graph,
``scipy.sparse.linalg.cg`` per video, then z < 0 -> 0 and the seeds -> max(z) (with ``np.exp`` instead of the
official ``np.vectorize(math.exp)``, which only makes the baseline faster).
"""

from __future__ import annotations

from typing import Literal

import numpy as np


def official_style(
    features: np.ndarray,
    *,
    affinity: Literal["rms", "cosine"] = "rms",
    band_k: int = 50,
    sigma: float = 0.1,
    alpha: float = 0.99,
    maxiter: int | None = 10,
) -> np.ndarray:
    """z of one video (T, D) by the official rules: banded window, W + W^T, symmetric normalisation, CG."""
    features = np.asarray(features, dtype=np.float64)
    length, dim = features.shape
    window = min(2 * min(band_k, length - 1), length)
    values = np.zeros((length, window))
    columns = np.zeros((length, window), dtype=np.int64)
    norms = np.linalg.norm(features, axis=1)
    for i in range(length):
        if i <= window // 2:
            neighbours = np.arange(0, window)
        elif i >= length - window // 2:
            neighbours = np.arange(length - window, length)
        else:
            neighbours = np.arange(i - window // 2, i + window // 2)
        if affinity == "cosine":
            similarity = features[neighbours] @ features[i] / (norms[neighbours] * norms[i])
        else:
            rms = np.sqrt(np.sum((features[i][None, :] - features[neighbours]) ** 2, axis=-1) / dim)
            similarity = np.exp(-rms / (2 * sigma**2))
        similarity = similarity * np.exp(-np.abs(neighbours - i) / len(neighbours))
        similarity[i - neighbours[0]] = 0  # no self-loop
        values[i] = similarity
        columns[i] = neighbours
    rows = np.repeat(np.arange(length), window)
    return solve_official(values.ravel(), rows, columns.ravel(), length, alpha=alpha, maxiter=maxiter)


def solve_official(values: np.ndarray, rows: np.ndarray, columns: np.ndarray, length: int, *, alpha: float,
                   maxiter: int | None) -> np.ndarray:
    """The official rules after the window weights W (given as sparse entries): W + W^T, zero degrees as 1,
    S = D^-1/2 W D^-1/2, CG on (I - alpha S) z = y for the seeds y from x0 = 0, then z < 0 -> 0, seeds -> max(z)."""
    import scipy.sparse
    import scipy.sparse.linalg

    graph = scipy.sparse.csr_matrix((values, (rows, columns)), shape=(length, length))
    graph = graph + graph.T
    degree = np.asarray(graph.sum(axis=1)).ravel()
    degree[degree == 0] = 1
    scaling = scipy.sparse.diags(1 / np.sqrt(degree))
    system = scipy.sparse.eye(length) - alpha * (scaling @ graph @ scaling)
    seeds = np.unique([0, 1, length - 2, length - 1])
    target = np.zeros(length)
    target[seeds] = 1
    z, _ = scipy.sparse.linalg.cg(system, target, rtol=1e-6, maxiter=maxiter)
    z[z < 0] = 0
    z[seeds] = z.max()
    return z
