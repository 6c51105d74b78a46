"""The detector: calibrated evidence of the classifier, the normality bank and the video's own propagation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lanp_vad.models.bank import build_bank
from lanp_vad.models.calibration import (
    MEDIAN_SCORE_GAP,
    THRESHOLD_SHARE,
    Calibration,
    CalibrationError,
    classifier_logit,
    fit_calibration,
    moving_average,
)
from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import BankConfig, ClassifierConfig, PropagationConfig
from lanp_vad.models.detector import Detector
from lanp_vad.models.torch_head import TorchHead
from lanp_vad.models.within import within_abnormality


def _training_videos(seed: int = 0) -> tuple[dict[str, list[np.ndarray]], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    classifier, distances, labels = [], [], []
    for _ in range(40):
        abnormal = np.zeros(50, dtype=np.float32)
        abnormal[rng.integers(0, 40):][:rng.integers(0, 10)] = 1
        classifier.append(1 / (1 + np.exp(-(rng.normal(-2, 1, 50) + 4 * abnormal))))
        distances.append(np.exp(rng.normal(0, 0.5, 50) + 1.5 * abnormal))
        labels.append(abnormal)
    return {"classifier": classifier, "bank": distances}, labels


def test_the_calibration_puts_its_threshold_at_one_half_between_the_normal_and_abnormal_medians() -> None:
    parts, labels = _training_videos()
    calibration = fit_calibration(parts, labels)
    abnormal = np.concatenate(labels) >= 0.5
    evidence = np.concatenate([calibration.evidence({name: values[i] for name, values in parts.items()})
                               for i in range(len(labels))])  # fmt: skip
    scores = calibration.score({name: np.concatenate(values) for name, values in parts.items()})
    normal_median, abnormal_median = np.median(evidence[~abnormal]), np.median(evidence[abnormal])
    assert calibration.threshold == pytest.approx(normal_median + THRESHOLD_SHARE * (abnormal_median - normal_median))
    medians = np.array([normal_median, abnormal_median])
    logistic = 1 / (1 + np.exp(-(medians - calibration.threshold) / calibration.scale))
    assert logistic[0] < 0.5 < logistic[1]
    assert logistic[1] - logistic[0] == pytest.approx(MEDIAN_SCORE_GAP, abs=0.05)
    assert np.mean((scores < 0.05) | (scores > 0.95)) < 0.5  # graded, not a 0/1 step
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_the_bank_evidence_is_averaged_over_its_radius() -> None:
    assert np.allclose(moving_average(np.array([0.0, 3.0, 0.0, 0.0]), 1), [1.0, 1.5, 0.75, 0.0])  # weights 1 2 1
    assert np.allclose(moving_average(np.arange(4.0), 0), np.arange(4.0))
    assert np.allclose(moving_average(np.array([2.0, 4.0]), 2), [(3 * 2 + 2 * 4) / 5, (2 * 2 + 3 * 4) / 5])


def test_an_archive_without_anomalies_is_calibrated_on_its_own_spread() -> None:
    parts, _ = _training_videos()
    calibration = fit_calibration({"bank": parts["bank"]}, None, bank_radius=0)
    scores = calibration.score({"bank": np.concatenate(parts["bank"])})
    assert np.mean(scores > 0.5) == pytest.approx(0.01, abs=0.003)
    assert calibration.components == ("bank",)


def test_bad_calibrations_are_refused() -> None:
    with pytest.raises(CalibrationError, match="nothing to calibrate"):
        fit_calibration({}, None)
    with pytest.raises(CalibrationError, match="every training snippet"):
        fit_calibration({"classifier": [np.full(5, 0.9)]}, [np.ones(5)])
    good = fit_calibration({"classifier": [np.linspace(0.1, 0.9, 50)]}, [np.arange(50) > 40]).to_dict()
    for broken in ({**good, "components": ["camera"]}, {**good, "scale": -1.0},
                   {key: value for key, value in good.items() if key != "threshold"}):  # fmt: skip
        with pytest.raises(CalibrationError):
            Calibration.from_dict(broken)
    bank_only = fit_calibration({"bank": [np.ones(9)]}, None)
    with pytest.raises(CalibrationError, match="bank"):
        Detector(None, None, bank_only)
    within = fit_calibration({"within": [np.linspace(0, 1, 9)]}, None)
    with pytest.raises(CalibrationError, match="propagation"):
        Detector(None, None, within)
    with pytest.raises(CalibrationError, match="no end"):
        Detector(None, None, within, within, PropagationConfig())


def test_the_detector_scores_as_its_parts_and_a_stream_without_the_videos_own_propagation() -> None:
    rng = np.random.default_rng(1)
    videos = [rng.normal(size=(20, 6)).astype(np.float32) for _ in range(5)]
    classifier = create_classifier(dim=6, config=ClassifierConfig(hidden=8, dropout=0.0), seed=0).eval()
    head = TorchHead(classifier, torch.device("cpu"))
    bank = build_bank(videos, BankConfig(enabled=True))
    propagation = PropagationConfig()
    raw = [head(video) for video in videos]
    distances = bank.archive_distances(videos)
    within = [within_abnormality(video, propagation) for video in videos]
    labels = [(d > np.quantile(np.concatenate(distances), 0.9)).astype(np.float32) for d in distances]
    video = fit_calibration({"classifier": raw, "bank": distances, "within": within}, labels)
    stream = fit_calibration({"classifier": raw, "bank": distances}, labels)
    detector = Detector(head, bank, video, stream, propagation)
    expected = video.score({"classifier": raw[2], "bank": distances[2], "within": within[2]})
    assert np.allclose(detector(videos[2]), expected)  # recognised by its seeds: its own bank entries left out
    crops = np.stack([videos[2], videos[2]], axis=1)  # two identical crops score as one
    assert np.allclose(detector(crops), expected, atol=1e-6)
    live = detector.for_stream()
    assert np.allclose(live(videos[2]), stream.score({"classifier": raw[2], "bank": distances[2]}))
    assert live.radius == max(head.radius, stream.bank_radius)
    assert np.allclose(Detector(head)(videos[2]), raw[2], atol=1e-7)  # the official recipe: the classifier alone
    assert np.all(np.isfinite(classifier_logit(np.array([0.0, 1.0]))))
