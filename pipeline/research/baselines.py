"""Training glue for the baselines: feature sets in, per-epoch evaluation through the project's evaluator out.

The same data flow as ``pipeline.training.trainer`` for LANP: crop-averaged training features (no labels),
optional ground
truth only to report pseudo-label quality, and an ``eval_fn`` called after every epoch with the model, so the
table reports final- and best-epoch metrics for every method the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from torch import nn

from models.baselines import C2FPLConfig, GCLConfig, random_scores, seed_contrast_scores, train_c2fpl, train_gcl
from models.errors import UserError
from pipeline.evaluation.groundtruth import GroundTruth
from pipeline.features.featureset import FeatureSet
from pipeline.training.trainer import load_training_features, pseudo_label_quality

BaselineKind = Literal["c2fpl", "gcl", "seed_contrast", "random"]
BASELINES: tuple[str, ...] = ("c2fpl", "gcl", "seed_contrast", "random")


@dataclass
class BaselineOutcome:
    """Per-epoch metrics (``epoch`` + what ``eval_fn`` returned), snippet pseudo-label quality, the model."""

    history: list[dict[str, float]]
    pseudo_quality: dict[str, float] | None
    model: nn.Module | None


def run_baseline(
    kind: BaselineKind,
    train: FeatureSet,
    evaluation: FeatureSet,
    *,
    eval_fn: Callable[[nn.Module], dict[str, float]],
    measure: Callable[[dict[str, np.ndarray]], dict[str, float]],
    seed: int = 0,
    epochs: int | None = None,
    ground_truth: GroundTruth | None = None,
    device: str = "cpu",
    config: C2FPLConfig | GCLConfig | None = None,
) -> BaselineOutcome:
    """Train a baseline on ``train`` and evaluate after every epoch (``measure`` scores the random scorer)."""
    if kind not in BASELINES:
        raise UserError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    if kind in ("random", "seed_contrast"):  # no training: score the evaluation videos directly
        videos = load_training_features(evaluation)
        if kind == "random":
            values = random_scores([video.shape[0] for video in videos], seed)
        else:
            values = seed_contrast_scores(videos, evaluation.video_ids)
        scores = dict(zip(evaluation.video_ids, values, strict=True))
        return BaselineOutcome([{"epoch": 1, **measure(scores)}], None, None)
    arrays = load_training_features(train)
    history: list[dict[str, float]] = []

    def on_epoch(epoch: int, model: nn.Module) -> None:
        history.append({"epoch": epoch, **eval_fn(model)})

    quality: dict[str, Any] | None = None
    if kind == "c2fpl":
        c2fpl = config if isinstance(config, C2FPLConfig) else C2FPLConfig()
        if epochs is not None:
            c2fpl = c2fpl.model_copy(update={"epochs": epochs})
        model, labels = train_c2fpl(arrays, c2fpl, seed=seed, device=device, on_epoch=on_epoch)
        if ground_truth is not None:
            lengths = [array.shape[0] for array in arrays]
            quality = pseudo_label_quality(train, lengths, labels, ground_truth)["snippet"]
    else:
        gcl = config if isinstance(config, GCLConfig) else GCLConfig()
        if epochs is not None:
            gcl = gcl.model_copy(update={"epochs": epochs})
        model = train_gcl(arrays, gcl, seed=seed, device=device, on_epoch=on_epoch)
    return BaselineOutcome(history, quality, model)
