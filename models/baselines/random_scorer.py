"""The floor every detector must clear: independent uniform scores per snippet."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def random_scores(num_snippets: Sequence[int], seed: int = 0) -> list[np.ndarray]:
    """Uniform [0, 1) scores, float64 (T,) per video, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    return [rng.random(int(count)) for count in num_snippets]
