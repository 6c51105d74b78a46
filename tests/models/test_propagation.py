"""Normality propagation against independent oracles: SciPy's CG on a loop-built graph, dense solves, fixed points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanp_vad.models.config import PropagationConfig, preset
from lanp_vad.models.propagation import PropagationError, propagate
from lanp_vad.pipeline.research.oracle import official_style


def relu_features(rng: np.random.Generator, length: int, dim: int = 64) -> np.ndarray:
    """Non-negative drifting features like a backbone's pooled ReLU outputs."""
    drift = np.cumsum(rng.normal(0, 0.05, (length, dim)), axis=0)
    return np.maximum(0.5 + drift + rng.normal(0, 0.2, (length, dim)), 0).astype(np.float32)


@pytest.mark.parametrize("length", [12, 80, 120, 150, 300])
@pytest.mark.parametrize("affinity", ["cosine", "rms"])
def test_reference_matches_official_rules(length: int, affinity: str) -> None:
    rng = np.random.default_rng(length)
    features = relu_features(rng, length)
    config = preset("reference").propagation.model_copy(update={"affinity": affinity})
    (z,) = propagate([features], config)
    expected = official_style(features, affinity=affinity)
    np.testing.assert_allclose(z, expected, rtol=1e-5, atol=1e-7 * expected.max())


def test_batched_equals_one_by_one() -> None:
    rng = np.random.default_rng(7)
    videos = [relu_features(rng, length) for length in (3, 5, 40, 101, 230, 640, 57)]
    config = preset("reference").propagation
    together = propagate(videos, config, chunk_elements=40_000)
    for video, z in zip(videos, together, strict=True):
        np.testing.assert_allclose(z, propagate([video], config)[0], rtol=1e-6)


def test_banded_chunks_solved_together_stop_each_video_by_its_own_rule() -> None:
    # one CG over several chunks' bands: each video keeps its own tolerance test and 10 T iteration cap
    rng = np.random.default_rng(11)
    videos = [relu_features(rng, length, dim=32) * 0.05 for length in (130, 260, 101, 400, 150)]
    config = preset("paper").propagation.model_copy(update={"banded": True, "cg_tol": 1e-8})
    together = propagate(videos, config, chunk_elements=30_000)  # about one video per chunk
    for video, z in zip(videos, together, strict=True):
        np.testing.assert_allclose(z, propagate([video], config)[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("banded", [False, True])
def test_cg_equals_exact_solve(banded: bool) -> None:
    rng = np.random.default_rng(3)
    videos = [relu_features(rng, length, dim=32) * 0.05 for length in (30, 140, 260)]
    config = preset("paper").propagation.model_copy(update={"banded": banded})
    assert config.cg_maxiter is None
    iterative = propagate(videos, config.model_copy(update={"cg_tol": 1e-12}))
    exact = propagate(videos, config.model_copy(update={"solver": "exact"}))
    for z_cg, z_exact in zip(iterative, exact, strict=True):
        np.testing.assert_allclose(z_cg, z_exact, atol=1e-6 * np.abs(z_exact).max())


def test_fixed_point_iteration_converges_to_scaled_solution() -> None:
    """z <- alpha S z + (1 - alpha) y converges to (1 - alpha) z* with z* the exact solution of (I - alpha S) z = y."""
    rng = np.random.default_rng(11)
    features = relu_features(rng, 25, dim=16) * 0.05
    config = PropagationConfig(
        seeds="first_last", affinity="gaussian", banded=False, temporal_length="video", postprocess=False,
        solver="exact", alpha=0.9,
    )
    (z_star,) = propagate([features], config)
    # S from the same definitions, built here densely and independently of the module.
    distances = ((features[:, None, :].astype(np.float64) - features[None, :, :]) ** 2).sum(-1)
    gaps = np.abs(np.arange(25)[:, None] - np.arange(25)[None, :])
    weights = np.exp(-distances / (2 * 0.1**2)) * np.exp(-gaps / 25)
    np.fill_diagonal(weights, 0)
    degree = weights.sum(1)
    degree[degree == 0] = 1
    normalised = weights / np.sqrt(degree[:, None] * degree[None, :])
    seeds = np.zeros(25)
    seeds[[0, 24]] = 1
    z = seeds.copy()
    for _ in range(400):
        z = 0.9 * normalised @ z + 0.1 * seeds
    np.testing.assert_allclose(z, 0.1 * z_star, atol=1e-9)


@pytest.mark.parametrize("length", [1, 2])
def test_too_short_video_names_it(length: int) -> None:
    videos = [np.ones((10, 4), np.float32), np.ones((length, 4), np.float32)]
    with pytest.raises(PropagationError, match="Shoplifting007") as error:
        propagate(videos, preset("reference").propagation, video_ids=["ok", "Shoplifting007"])
    assert error.value.video_id == "Shoplifting007"


def test_mixed_dimensions_name_the_video() -> None:
    with pytest.raises(PropagationError, match="b: feature dimension 5"):
        propagate([np.ones((6, 4)), np.ones((6, 5))], preset("reference").propagation, video_ids=["a", "b"])


@pytest.mark.parametrize(
    "update",
    [
        {"seeds": "first_last"},
        {"seeds": "random"},
        {"seeds": "data_driven"},
        {"method": "direct"},
        {"feature_similarity": False},
        {"temporal": False},
        {"affinity": "gaussian", "sigma": 5.0},
        {"affinity": "adaptive"},
        {"standardize": True},
        {"temporal_length": "video"},
        {"postprocess": False},
    ],
)
def test_every_switch_changes_the_result_and_stays_finite(update: dict) -> None:
    rng = np.random.default_rng(5)
    videos = [relu_features(rng, length) for length in (40, 180)]
    base = preset("reference").propagation
    baseline = propagate(videos, base)
    changed = propagate(videos, base.model_copy(update=update))
    assert all(np.isfinite(z).all() and z.shape == v.shape[:1] for z, v in zip(changed, videos, strict=True))
    assert any(not np.allclose(a, b) for a, b in zip(baseline, changed, strict=True))


def test_propagation_finds_the_inserted_anomaly() -> None:
    """An abnormal middle segment gets the lowest normality under the reference preset."""
    rng = np.random.default_rng(2)
    features = relu_features(rng, 200)
    features[90:110] += 3.0
    (z,) = propagate([features], preset("reference").propagation)
    lowest = np.argsort(z)[:20]
    assert np.mean((lowest >= 90) & (lowest < 110)) >= 0.8


def test_random_seeds_depend_on_seed_only() -> None:
    rng = np.random.default_rng(9)
    videos = [relu_features(rng, 60)]
    config = preset("reference").propagation.model_copy(update={"seeds": "random"})
    first, again, other = (propagate(videos, config, seed=s)[0] for s in (1, 1, 2))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_accepts_torch_tensors() -> None:
    rng = np.random.default_rng(4)
    features = relu_features(rng, 50)
    config = preset("reference").propagation
    np.testing.assert_allclose(
        propagate([torch.from_numpy(features)], config)[0], propagate([features], config)[0], rtol=1e-12
    )


def test_cosine_of_standardised_features_gives_finite_normality() -> None:
    """Standardised features have negative cosines; unclamped, degrees go negative and z NaN."""
    rng = np.random.default_rng(11)
    videos = [relu_features(rng, length) for length in (9, 40, 150)]
    config = preset("reference-sh").propagation.model_copy(update={"standardize": True})
    for z in propagate(videos, config):
        assert np.isfinite(z).all() and (z >= 0).all()


def test_a_video_without_a_feature_graph_warns_and_uses_the_temporal_graph(caplog: pytest.LogCaptureFixture) -> None:
    """The paper's sigma = 0.1 underflows at real feature scales (W = 0); all-zero rows do the same under cosine."""
    rng = np.random.default_rng(12)
    far_apart = (rng.random((30, 64)) * 100).astype(np.float32)
    zeros = np.zeros((20, 64), dtype=np.float32)
    config = preset("paper").propagation
    from lanp_vad.models.propagation import propagate_videos

    with caplog.at_level("WARNING"):
        result = propagate_videos([far_apart, relu_features(rng, 25) * 0.01], config, video_ids=["far", "ok"])
    assert result.featureless == [0] and "far" in caplog.text
    temporal = config.model_copy(update={"feature_similarity": False})
    np.testing.assert_allclose(result.z[0], propagate([far_apart], temporal)[0])
    cosine = propagate_videos([zeros], preset("reference-sh").propagation)
    assert cosine.featureless == [0] and np.isfinite(cosine.z[0]).all()
