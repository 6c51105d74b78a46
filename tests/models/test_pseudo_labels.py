"""Pseudo labels: the official selection on the real reference propagation output, counts, the auto share."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.models.config import PseudoLabelConfig, preset
from lanp_vad.models.pseudo_labels import estimate_abnormal_fraction, make_pseudo_labels, share_count


@pytest.fixture(scope="module")
def reference_sh(shared_data: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """z per ShanghaiTech train video (split order) from the official output, and the true video labels."""
    scores = json.loads((shared_data / "shanghaitech/lanp/pseudo_label_scores_sh.json").read_text())
    split = [line.split(",") for line in (shared_data / "shanghaitech/splits/train_split.txt").read_text().split()]
    z = [np.asarray(scores[name]["pseudo_label_scores"], dtype=np.float64) for name, _, _ in split]
    return z, np.array([int(label) for _, label, _ in split])


def test_reference_selection_on_shanghaitech(reference_sh: tuple[list[np.ndarray], np.ndarray]) -> None:
    z, truth = reference_sh
    labels = make_pseudo_labels(z, preset("reference-sh").pseudo)
    assert labels.abnormal.sum() == 64
    assert truth[labels.abnormal].sum() == 47
    assert len(labels.confident_normal) == 17
    assert truth[labels.confident_normal].sum() == 0
    assert not labels.abnormal[labels.confident_normal].any()
    for values, snippet, is_abnormal in zip(z, labels.snippet_labels, labels.abnormal, strict=True):
        expected = int(0.4 * len(values)) if is_abnormal else 0
        assert snippet.dtype == np.float32 and snippet.sum() == expected
        if expected:
            assert values[snippet == 1].max() <= values[snippet == 0].min()


def test_video_score_is_std_of_z(shared_data: Path, reference_sh: tuple[list[np.ndarray], np.ndarray]) -> None:
    scores = json.loads((shared_data / "shanghaitech/lanp/pseudo_label_scores_sh.json").read_text())
    split = [line.split(",")[0] for line in (shared_data / "shanghaitech/splits/train_split.txt").read_text().split()]
    labels = make_pseudo_labels(reference_sh[0], PseudoLabelConfig(abnormal_fraction=0.27))
    np.testing.assert_allclose(labels.video_scores, [scores[name]["score_v"] for name in split], rtol=1e-12)
    assert labels.abnormal.sum() == 64  # int(0.27 * 238), the official code's constant


def test_auto_share_on_shanghaitech(reference_sh: tuple[list[np.ndarray], np.ndarray]) -> None:
    z, truth = reference_sh
    labels = make_pseudo_labels(z, PseudoLabelConfig(abnormal_fraction="auto"))
    assert abs(labels.abnormal_fraction - truth.mean()) < 0.06
    assert labels.abnormal.sum() == share_count(labels.abnormal_fraction, len(z))


@pytest.mark.parametrize("share", [0.1, 0.3, 0.5])
def test_auto_share_recovers_a_two_group_mixture(share: float) -> None:
    rng = np.random.default_rng(int(share * 100))
    abnormal = rng.random(400) < share
    scores = np.exp(np.where(abnormal, rng.normal(-0.5, 0.25, 400), rng.normal(-1.5, 0.25, 400)))
    assert estimate_abnormal_fraction(scores) == pytest.approx(abnormal.mean(), abs=0.03)


def test_share_count_rounding() -> None:
    assert share_count(64 / 238, 238) == 64
    assert share_count(0.27, 238) == 64
    assert share_count(0.5, 1610) == 805
    assert share_count(0.1, 174) == 17
    assert share_count(0.57, 100) == 57  # 0.57 * 100 = 56.99999999999999
    assert share_count(0.4, 12) == 4  # int(), not round(): 4.8 -> 4 as in the official code


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="no videos"):
        make_pseudo_labels([], PseudoLabelConfig())
    with pytest.raises(ValueError, match="at least two"):
        estimate_abnormal_fraction(np.array([0.3]))
    assert estimate_abnormal_fraction(np.full(10, 0.2)) == 0.5


def test_min_confident_normal_keeps_the_normal_list_non_empty() -> None:
    z = [np.linspace(0, 1, 10) * scale for scale in (1, 2, 3, 4, 5, 6)]
    official = make_pseudo_labels(z, PseudoLabelConfig(abnormal_fraction=0.5))
    assert len(official.confident_normal) == 0  # int(0.1 * 3) = 0: the official rule leaves none
    kept = make_pseudo_labels(z, PseudoLabelConfig(abnormal_fraction=0.5, min_confident_normal=1))
    assert kept.confident_normal.tolist() == [0]  # the lowest-std video
