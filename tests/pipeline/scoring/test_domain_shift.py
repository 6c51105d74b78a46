"""The domain-shift warning on real footage: a model of Ped2's camera warns on store-camera clips, not on Ped2 test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import ClassifierConfig, LANPConfig
from lanp_vad.pipeline.scoring.config import ScoringConfig
from lanp_vad.pipeline.scoring.result import WarningKind
from lanp_vad.pipeline.scoring.scorer import Scorer
from lanp_vad.pipeline.training.domain import SHIFT_WARN_AT, FeatureStats, fit_feature_stats
from lanp_vad.pipeline.training.model_dir import save_model
from tests.service.tiny_model import tiny_extractor


@pytest.fixture(scope="module")
def ped2_model(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A head over the tiny extractor with the statistics of 6 Ped2 training clips (the camera it knows)."""
    extractor = tiny_extractor()
    try:
        arrays = [extractor.extract_video(shared_data / "ucsd-ped2" / "videos" / "train" / f"{i:02d}.mp4",
                                          timeout_s=None).features for i in range(1, 7)]
    finally:
        extractor.close()
    config = LANPConfig(classifier=ClassifierConfig(hidden=32, dropout=0.0))
    classifier = create_classifier(dim=extractor.spec.dim, config=config.classifier, seed=3)
    return save_model(tmp_path_factory.mktemp("shift") / "ped2", classifier, extractor.spec, config,
                      {"threshold": 0.5}, feature_stats=fit_feature_stats(arrays))


def test_the_warning_fires_on_another_camera_and_not_on_the_training_camera(ped2_model: Path,
                                                                           shared_data: Path) -> None:
    with Scorer.from_model_dir(ped2_model, device="cpu", config=ScoringConfig(decode_timeout_s=None)) as scorer:
        same = scorer.score_video(shared_data / "ucsd-ped2" / "videos" / "test" / "04.mp4").model_dump(mode="json")
        other = scorer.score_video(shared_data / "cctv-clips" / "Normal__Dava1_2.mp4").model_dump(mode="json")
    assert same["domain_shift"]["out_of_distribution"] is False and same["domain_shift"]["score"] < SHIFT_WARN_AT
    assert WarningKind.DOMAIN_SHIFT not in [warning["kind"] for warning in same["warnings"]]
    assert other["domain_shift"]["out_of_distribution"] is True and other["domain_shift"]["score"] > SHIFT_WARN_AT
    assert WarningKind.DOMAIN_SHIFT in [warning["kind"] for warning in other["warnings"]]


def test_statistics_round_trip_and_a_model_without_them_reports_none(ped2_model: Path, tmp_path: Path) -> None:
    stats = FeatureStats.load(ped2_model)
    assert stats is not None and stats.components.shape[1] == stats.mean.shape[0]
    features = np.random.default_rng(0).normal(size=(5, stats.mean.shape[0]))
    assert stats.distances(features).shape == (5,)
    assert stats.distances(features[:, None, :].repeat(3, axis=1)) == pytest.approx(stats.distances(features))
    assert FeatureStats.load(tmp_path) is None
