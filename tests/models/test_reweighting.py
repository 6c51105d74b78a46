"""Loss re-weighting against distances computed here by hand, one pair at a time."""

from __future__ import annotations

import numpy as np
import pytest

from lanp_vad.models.config import ReweightConfig
from lanp_vad.models.reweighting import loss_weights, normal_list


def test_normal_list_uses_sampled_or_all_snippets() -> None:
    videos = [np.arange(40, dtype=np.float64).reshape(40, 1) * [1, 2], np.ones((5, 2)), np.zeros((3, 2))]
    sampled = normal_list(videos, np.array([0, 1]), ReweightConfig(normal_features="sampled"), num_segments=4)
    every = normal_list(videos, np.array([0, 1]), ReweightConfig(normal_features="all"), num_segments=4)
    # floor(i * 40 / 4) = 0, 10, 20, 30 -> mean 15; all 40 snippets -> mean 19.5
    np.testing.assert_allclose(sampled, [[15, 30], [1, 1]])
    np.testing.assert_allclose(every, [[19.5, 39], [1, 1]])


@pytest.mark.parametrize("distance", ["cosine", "rms"])
def test_weights_follow_the_definition(distance: str) -> None:
    rng = np.random.default_rng(0)
    features = rng.random((3, 7, 6))
    labels = (rng.random((3, 7)) > 0.5).astype(np.float32)
    normals = rng.random((4, 6))
    weights = loss_weights(features, labels, normals, ReweightConfig(distance=distance))
    for index in np.ndindex(labels.shape):
        x = features[index]
        if distance == "cosine":
            d = min(1 - x @ m / (np.linalg.norm(x) * np.linalg.norm(m)) for m in normals)
        else:
            d = min(np.sqrt(np.mean((x - m) ** 2)) for m in normals)
        assert weights[index] == pytest.approx(np.exp(-abs(d - labels[index])), rel=1e-9)


def test_disabled_gives_ones_and_shapes_are_checked() -> None:
    features, normals = np.ones((2, 5, 3)), np.ones((1, 3))
    np.testing.assert_array_equal(loss_weights(features, np.zeros((2, 5)), normals, ReweightConfig(enabled=False)), 1)
    with pytest.raises(ValueError, match="do not match"):
        loss_weights(features, np.zeros((2, 4)), normals, ReweightConfig())
    with pytest.raises(ValueError, match="at least one confident normal"):
        normal_list([np.ones((4, 3))], np.array([], dtype=int), ReweightConfig(), num_segments=32)
