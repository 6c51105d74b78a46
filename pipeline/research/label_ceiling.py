"""The label ceiling: the LANP classifier trained on the *true* snippet labels of the training videos.

Not a method (it reads the ground truth): it measures what the pseudo labels could at best buy on a data set,
with the same head, sampling, optimiser and epochs as the LANP rows (no re-weighting: every true label counts the
same). Where this row is low, no change to the pseudo labels can lift LANP far, and the limit is the features or
the classifier, not the labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from lanp_vad.models.config import LANPConfig
from lanp_vad.models.sampling import segment_indices
from lanp_vad.pipeline.evaluation.groundtruth import GroundTruth
from lanp_vad.pipeline.features.featureset import FeatureSet
from lanp_vad.pipeline.training.trainer import classifier_inputs, fit_classifier, load_training_features


def train_on_true_labels(
    features: FeatureSet,
    ground_truth: GroundTruth,
    config: LANPConfig,
    *,
    eval_fn: Callable[[Any], dict[str, float]] | None = None,
) -> list[dict[str, float]]:
    """Fit the classifier of ``config`` on the true 0/1 snippet labels; the per-epoch history."""
    arrays = load_training_features(features)
    labels = [
        ground_truth.snippet_labels_for(entry.video_id, len(array), num_frames=entry.num_frames)
        for entry, array in zip(features, arrays, strict=True)
    ]
    inputs = classifier_inputs(arrays, config, torch.device("cpu"))
    count = config.train.num_segments
    targets = torch.from_numpy(
        np.stack([label[segment_indices(len(label), count)] for label in labels]).astype(np.float32)
    )
    _, history = fit_classifier(
        inputs.features, targets, torch.ones_like(targets), inputs.config, references=inputs.references,
        progress=False, eval_fn=eval_fn,
    )  # fmt: skip
    return history
