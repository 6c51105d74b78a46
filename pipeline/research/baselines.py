"""Training glue for the baselines: feature sets in, per-epoch evaluation through the project's evaluator out.

The same data flow as ``pipeline.training.trainer`` for LANP: crop-averaged training features (no labels),
optional ground truth only to report pseudo-label quality, and an ``eval_fn`` called after every epoch with the
model, so the table reports final- and best-epoch metrics for every method the same way. A row's ``overrides``
(``key=value``) set fields of the peer's config, e.g. ``variant=authors`` for C2FPL as its authors' code has it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import ValidationError
from torch import nn

from lanp_vad.models.baselines import (
    C2FPLConfig,
    GCLConfig,
    random_scores,
    seed_contrast_scores,
    train_c2fpl,
    train_gcl,
)
from lanp_vad.models.baselines.seed_bank import seed_bank_scores
from lanp_vad.models.config import ConfigError
from lanp_vad.models.errors import UserError
from lanp_vad.pipeline.evaluation.groundtruth import GroundTruth
from lanp_vad.pipeline.features.featureset import FeatureSet
from lanp_vad.pipeline.training.trainer import load_training_features, pseudo_label_quality

BaselineKind = Literal["c2fpl", "gcl", "seed_contrast", "seed_bank", "all_bank", "random"]
BASELINES: tuple[str, ...] = ("c2fpl", "gcl", "seed_contrast", "seed_bank", "all_bank", "random")
UNTRAINED = ("random", "seed_contrast", "seed_bank", "all_bank")  # score the evaluation videos directly


@dataclass
class BaselineOutcome:
    """Per-epoch metrics (``epoch`` + what ``eval_fn`` returned), pseudo-label quality, the model.

    ``pseudo_quality``: snippet ``precision`` / ``recall`` of the abnormal pseudo labels, and for C2FPL the
    abnormal bag's ``video_share`` (of all training videos), ``video_precision`` and ``video_recall``.
    """

    history: list[dict[str, float]]
    pseudo_quality: dict[str, float] | None
    model: nn.Module | None


def peer_config(kind: str, overrides: Sequence[str] = ()) -> C2FPLConfig | GCLConfig:
    """The peer's config with ``key=value`` overrides (JSON values where they parse, else strings)."""
    config_type = C2FPLConfig if kind == "c2fpl" else GCLConfig
    values: dict[str, object] = {}
    for assignment in overrides:
        key, separator, text = assignment.partition("=")
        if not separator:
            raise ConfigError(f"{kind} override {assignment!r} is not of the form key=value")
        try:
            values[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            values[key.strip()] = text.strip()
    try:
        return config_type(**values)
    except ValidationError as error:
        raise ConfigError(f"invalid {kind} override {list(overrides)}: {error}") from error


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
    overrides: Sequence[str] = (),
) -> BaselineOutcome:
    """Train a baseline on ``train`` and evaluate after every epoch (``measure`` scores the untrained ones).

    ``config`` (else the peer's defaults with ``overrides``) configures C2FPL or GCL.
    """
    if kind not in BASELINES:
        raise UserError(f"unknown baseline {kind!r}; choose one of {', '.join(BASELINES)}")
    if kind in UNTRAINED:  # no training: score the evaluation videos directly
        videos = load_training_features(evaluation)
        if kind == "random":
            values = random_scores([video.shape[0] for video in videos], seed)
        elif kind == "seed_contrast":
            values = seed_contrast_scores(videos, evaluation.video_ids)
        else:  # the memory bank of the prior's seeds (or of every snippet), a video never vouching for itself
            values = seed_bank_scores(
                load_training_features(train), videos, train_ids=train.video_ids,
                evaluation_ids=evaluation.video_ids, bank="seeds" if kind == "seed_bank" else "all",
            )  # fmt: skip
        scores = dict(zip(evaluation.video_ids, values, strict=True))
        return BaselineOutcome([{"epoch": 1, **measure(scores)}], None, None)
    arrays = load_training_features(train)
    history: list[dict[str, float]] = []

    def on_epoch(epoch: int, model: nn.Module) -> None:
        history.append({"epoch": epoch, **eval_fn(model)})

    settings = config if config is not None else peer_config(kind, overrides)
    if epochs is not None:
        settings = settings.model_copy(update={"epochs": epochs})
    if isinstance(settings, C2FPLConfig):
        model, labels = train_c2fpl(arrays, settings, seed=seed, device=device, on_epoch=on_epoch)
    else:
        model, labels = train_gcl(arrays, settings, seed=seed, device=device, on_epoch=on_epoch)
    quality = None
    if ground_truth is not None:
        measured = pseudo_label_quality(train, [array.shape[0] for array in arrays], labels, ground_truth)
        quality = dict(measured["snippet"])
        if isinstance(settings, C2FPLConfig):
            quality.update({
                "video_share": float(np.mean(labels.abnormal)),
                "video_precision": measured["video"]["precision"],
                "video_recall": measured["video"]["recall"],
            })  # fmt: skip
    return BaselineOutcome(history, quality, model)
