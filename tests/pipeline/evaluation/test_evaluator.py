"""Evaluation: per-video snippet scores, the 16x frame protocol, AUC/AP against sklearn, one-class refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import ClassifierConfig
from lanp_vad.pipeline.evaluation.evaluator import (
    EvaluationError,
    Evaluator,
    frame_metrics,
    metrics_from_frames,
    snippet_scores,
)
from lanp_vad.pipeline.evaluation.groundtruth import load_ground_truth
from lanp_vad.pipeline.features.featureset import open_feature_set


def _write_set(folder: Path, lengths: dict[str, int], crops: int | None = None, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir()
    for video_id, length in lengths.items():
        shape = (length, 6) if crops is None else (length, crops, 6)
        np.save(folder / f"{video_id}.npy", rng.normal(size=shape).astype(np.float32))


def test_frame_protocol_matches_a_direct_computation(tmp_path: Path) -> None:
    _write_set(tmp_path / "feats", {"a": 5, "b": 3, "c": 4}, crops=10)
    (tmp_path / "gt.csv").write_text("a,16,40\nc,0,8\n")
    features = open_feature_set(tmp_path / "feats")
    ground_truth = load_ground_truth(tmp_path / "gt.csv")
    model = create_classifier(dim=6, config=ClassifierConfig(hidden=8), seed=0).eval()

    scores = snippet_scores(model, features)
    assert list(scores) == ["a", "b", "c"] and [len(v) for v in scores.values()] == [5, 3, 4]
    crops = torch.from_numpy(np.load(tmp_path / "feats" / "b.npy"))
    per_crop = torch.stack([model(crops[:, k][None])[0] for k in range(10)]).mean(0)
    assert np.allclose(scores["b"], per_crop.detach().numpy(), atol=1e-6)

    labels = np.zeros(16 * 12, dtype=np.uint8)
    labels[16:40] = 1  # video a: frames 16..39
    labels[16 * 8 : 16 * 8 + 8] = 1  # video c starts after a (80 frames) and b (48 frames)
    frames = np.concatenate([np.repeat(values, 16) for values in scores.values()])
    metrics = frame_metrics(scores, ground_truth)
    assert metrics["auc_roc"] == pytest.approx(roc_auc_score(labels, frames))
    assert metrics["frames"] == 192 and metrics["abnormal_frames"] == 32
    assert Evaluator(features, ground_truth)(model) == metrics


def test_ap_is_not_the_trapezoid_pr_auc() -> None:
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    metrics = metrics_from_frames(scores, labels)
    precisions_at_hits = [1 / 2, 2 / 4, 3 / 5]  # AP: mean precision at each true positive
    assert metrics["ap"] == pytest.approx(np.mean(precisions_at_hits))
    assert metrics["pr_auc_trapezoid"] != pytest.approx(metrics["ap"])


def test_one_class_ground_truth_is_refused(tmp_path: Path) -> None:
    _write_set(tmp_path / "feats", {"a": 4, "b": 4})
    (tmp_path / "gt.csv").write_text("video_id,start_frame,end_frame\n")
    with pytest.raises(EvaluationError, match="only normal"):
        Evaluator(open_feature_set(tmp_path / "feats"), load_ground_truth(tmp_path / "gt.csv"))
