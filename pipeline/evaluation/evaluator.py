"""Frame-level evaluation of a LANP classifier, with the field's protocol (RTFM, C2FPL and LANP agree).

Per video in feature-set order: snippet scores (10-crop features: each crop scored, scores averaged), each repeated
16 times; frame labels built from the video's own T (``pipeline.evaluation.groundtruth``); all videos concatenated.
Reported: ``auc_roc`` (sklearn ``roc_auc_score``), ``ap`` (sklearn ``average_precision_score``: average precision,
a step-wise sum) and ``pr_auc_trapezoid`` (``auc(recall, precision)``, the trapezoid "PR-AUC" of the research
repositories, which is not the same number as AP).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from lanp_vad.models.classifier import LANPClassifier
from lanp_vad.models.detector import Detector
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.models.torch_head import TorchHead
from lanp_vad.pipeline.evaluation.groundtruth import GroundTruth
from lanp_vad.pipeline.features.featureset import FeatureSet, SpecMismatchError
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH


class EvaluationError(UserError):
    """Evaluation is undefined for this input (e.g. ground truth with only one class)."""

    kind = ErrorKind.INVALID_GROUND_TRUTH


def _tensor(array: np.ndarray, device: str | torch.device) -> torch.Tensor:
    """A writable float32 copy on ``device`` (feature files are memory-mapped read-only)."""
    return torch.from_numpy(np.array(array, dtype=np.float32)).to(device)


def _dim(model: LANPClassifier | Detector) -> int | None:
    """The feature dimension ``model`` takes: a classifier's ``dim``; a detector's, its torch classifier's or else
    its normality bank's. Baseline heads (the research harness passes them too) have no ``dim``: None."""
    if isinstance(model, Detector):
        if isinstance(model.head, TorchHead):
            return model.head.classifier.dim
        return model.bank.dim if model.bank is not None else None
    return getattr(model, "dim", None)


def _score(model: LANPClassifier | Detector, video_id: str, features: torch.Tensor) -> np.ndarray:
    """(T, D) or (T, crops, D) -> (T,) scores: a classifier scores crops separately and averages them; a
    ``Detector`` scores as the trained model does (classifier, normality bank, calibration). A video whose features
    are not the model's dimension is refused by name (a feature folder may mix dimensions: its spec comes from one
    file)."""
    dim = _dim(model)
    if dim is not None and features.shape[-1] != dim:
        raise SpecMismatchError(f"{video_id}: features of shape {tuple(features.shape)}, but the model takes "
                                f"{dim}-d features")
    if isinstance(model, Detector):
        return np.asarray(model(features.cpu().numpy()), dtype=np.float64)
    batch = features.unsqueeze(0) if features.ndim == 2 else features.permute(1, 0, 2).unsqueeze(0)
    return model(batch)[0].detach().cpu().numpy().astype(np.float64)


class Evaluator:
    """Frame metrics of any model on one feature set; features and labels are loaded once (per-epoch use)."""

    def __init__(self, features: FeatureSet, ground_truth: GroundTruth, device: str | torch.device = "cpu"):
        self.video_ids = features.video_ids
        self.device = torch.device(device)
        arrays = [features.load(video_id) for video_id in self.video_ids]
        self.tensors = [_tensor(array, self.device) for array in arrays]
        self.labels = ground_truth.labels_for(
            self.video_ids, [array.shape[0] for array in arrays], [entry.num_frames for entry in features]
        )
        if self.labels.min() == self.labels.max():
            raise EvaluationError(
                f"the ground truth of {features.source} holds only {'abnormal' if self.labels[0] else 'normal'} "
                "frames; ROC-AUC and AP need both"
            )

    @torch.no_grad()
    def snippet_scores(self, model: LANPClassifier | Detector) -> dict[str, np.ndarray]:
        training = not isinstance(model, Detector) and model.training  # a classifier in training goes back to it
        if training:
            model.eval()
        scores = {
            video_id: _score(model, video_id, tensor)
            for video_id, tensor in zip(self.video_ids, self.tensors, strict=True)
        }
        if training:
            model.train()
        return scores

    def __call__(self, model: LANPClassifier) -> dict[str, float]:
        """Metrics of ``model`` (usable as the trainer's per-epoch ``eval_fn``)."""
        return metrics_from_frames(frame_scores(self.snippet_scores(model)), self.labels)


def snippet_scores(
    model: LANPClassifier | Detector, features: FeatureSet, device: str | torch.device = "cpu"
) -> dict[str, np.ndarray]:
    """Per-snippet scores (T,) of every video of a feature set, in order."""
    if not isinstance(model, Detector):
        model = model.to(device).eval()
    with torch.no_grad():
        return {
            video_id: _score(model, video_id, _tensor(features.load(video_id), device))
            for video_id in features.video_ids
        }


def frame_scores(scores: Mapping[str, np.ndarray]) -> np.ndarray:
    """Every snippet score repeated 16 times, videos concatenated in order."""
    return np.concatenate([np.repeat(values, SNIPPET_LENGTH) for values in scores.values()])


def metrics_from_frames(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """auc_roc, ap and pr_auc_trapezoid of frame scores against 0/1 frame labels of the same length."""
    if scores.shape != labels.shape:
        raise EvaluationError(f"{scores.size} frame scores but {labels.size} frame labels")
    precision, recall, _ = precision_recall_curve(labels, scores)
    return {
        "auc_roc": float(roc_auc_score(labels, scores)),
        "ap": float(average_precision_score(labels, scores)),
        "pr_auc_trapezoid": float(auc(recall, precision)),
        "frames": int(labels.size),
        "abnormal_frames": int(labels.sum()),
    }


def frame_metrics(
    scores: Mapping[str, np.ndarray],
    ground_truth: GroundTruth,
    num_frames: Mapping[str, int | None] | None = None,
) -> dict[str, float]:
    """Frame-level metrics of per-video snippet scores (in evaluation order) against ground truth."""
    counts = num_frames or {}
    labels = ground_truth.labels_for(
        list(scores), [len(values) for values in scores.values()], [counts.get(video_id) for video_id in scores]
    )
    if labels.min() == labels.max():
        raise EvaluationError("the ground truth of these videos holds only one class; ROC-AUC and AP need both")
    return metrics_from_frames(frame_scores(scores), labels)
