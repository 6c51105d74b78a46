"""The detector: calibrated evidence of the classifier and the normality bank, a score that ranks within a video."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanp_vad.models.bank import build_bank
from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import BankConfig, ClassifierConfig
from lanp_vad.models.calibration import (
    NORMAL_MEDIAN_SCORE,
    Calibration,
    CalibrationError,
    classifier_logit,
    fit_calibration,
)
from lanp_vad.models.detector import Detector
from lanp_vad.models.torch_head import TorchHead


def _training_snippets(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    abnormal = rng.random(2000) < 0.1
    classifier = 1 / (1 + np.exp(-(rng.normal(-2, 1, 2000) + 4 * abnormal)))
    distances = np.exp(rng.normal(0, 0.5, 2000) + 1.5 * abnormal)
    return classifier, distances, abnormal


def test_the_calibration_puts_the_threshold_at_one_half_and_normal_snippets_near_a_tenth() -> None:
    classifier, distances, abnormal = _training_snippets()
    calibration = fit_calibration(classifier_scores=classifier, bank_distances=distances, abnormal=abnormal)
    scores = calibration.score(calibration.evidence(classifier, distances))
    assert np.median(scores[~abnormal]) == pytest.approx(NORMAL_MEDIAN_SCORE, abs=0.01)
    normal_median = np.median(calibration.evidence(classifier, distances)[~abnormal])
    abnormal_median = np.median(calibration.evidence(classifier, distances)[abnormal])
    assert calibration.threshold == pytest.approx((normal_median + abnormal_median) / 2)
    assert calibration.score(np.array([calibration.threshold]))[0] == pytest.approx(0.5)
    # graded, not a 0/1 step: most snippets are far from both ends
    assert np.mean((scores < 0.05) | (scores > 0.95)) < 0.5
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_an_archive_without_anomalies_is_calibrated_on_its_own_spread() -> None:
    _, distances, _ = _training_snippets()
    calibration = fit_calibration(classifier_scores=None, bank_distances=distances, abnormal=None)
    scores = calibration.score(calibration.evidence(None, distances))
    assert np.mean(scores > 0.5) == pytest.approx(0.01, abs=0.003)
    assert calibration.components == ("bank",)


def test_bad_calibrations_are_refused() -> None:
    with pytest.raises(CalibrationError, match="nothing to calibrate"):
        fit_calibration(classifier_scores=None, bank_distances=None, abnormal=None)
    with pytest.raises(CalibrationError, match="every training snippet"):
        fit_calibration(classifier_scores=np.full(5, 0.9), bank_distances=None, abnormal=np.ones(5, bool))
    good = fit_calibration(classifier_scores=np.linspace(0.1, 0.9, 50), bank_distances=None,
                           abnormal=np.arange(50) > 40).to_dict()  # fmt: skip
    with pytest.raises(CalibrationError):
        Calibration.from_dict({**good, "components": ["camera"]})
    with pytest.raises(CalibrationError):
        Calibration.from_dict({**good, "scale": -1.0})
    with pytest.raises(CalibrationError):
        Calibration.from_dict({key: value for key, value in good.items() if key != "threshold"})
    with pytest.raises(CalibrationError, match="bank"):
        Detector(None, None, fit_calibration(classifier_scores=None, bank_distances=np.ones(9), abnormal=None))


def test_the_detector_scores_crops_and_windows_as_the_classifier_and_the_bank_do() -> None:
    rng = np.random.default_rng(1)
    videos = [rng.normal(size=(20, 6)).astype(np.float32) for _ in range(5)]
    classifier = create_classifier(dim=6, config=ClassifierConfig(hidden=8, dropout=0.0), seed=0).eval()
    bank = build_bank(videos, BankConfig(enabled=True))
    with torch.no_grad():
        raw = [classifier(torch.from_numpy(video)[None])[0].double().numpy() for video in videos]
    distances = bank.archive_distances(videos)
    calibration = fit_calibration(classifier_scores=np.concatenate(raw), bank_distances=np.concatenate(distances),
                                  abnormal=np.concatenate(distances) > np.quantile(np.concatenate(distances), 0.9))
    head = TorchHead(classifier, torch.device("cpu"))
    detector = Detector(head, bank, calibration)
    expected = calibration.score(calibration.evidence(raw[2], distances[2]))
    assert np.allclose(detector(videos[2]), expected)  # recognised by its seeds: its own entries left out
    crops = np.stack([videos[2], videos[2]], axis=1)  # two identical crops score as one
    assert np.allclose(detector(crops), expected, atol=1e-6)
    assert np.allclose(Detector(head)(videos[2]), raw[2], atol=1e-7)  # the official recipe: the classifier alone
    assert Detector(None, bank, fit_calibration(classifier_scores=None, bank_distances=np.concatenate(distances),
                                                abnormal=None)).radius == 0  # fmt: skip
    assert np.all(np.isfinite(classifier_logit(np.array([0.0, 1.0]))))
