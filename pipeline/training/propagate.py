"""Propagation of a whole feature set, for inspection: z, video scores and pseudo labels as one JSON file.

10-crop features are crop-averaged first (as the official ShanghaiTech training does). Videos shorter than three
snippets cannot be propagated: they are an error naming them, or, with ``skip_short``, left out and listed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanp_vad.models.bank import build_bank
from lanp_vad.models.config import LANPConfig
from lanp_vad.models.propagation import MIN_SNIPPETS, PropagationError, propagate_videos
from lanp_vad.pipeline.device import resolve_device
from lanp_vad.pipeline.features.featureset import FeatureSet
from lanp_vad.pipeline.files import atomic_write_bytes
from lanp_vad.pipeline.training.trainer import load_training_features, pseudo_labels_of


@dataclass(frozen=True)
class PropagationResult:
    """Per-video results in feature-set order, the videos left out as too short, and the config used."""

    video_ids: list[str]
    z: list[np.ndarray]
    video_scores: np.ndarray
    abnormal: np.ndarray
    confident_normal: np.ndarray
    snippet_labels: list[np.ndarray]
    abnormal_fraction: float
    skipped: list[str]
    config: LANPConfig

    def to_dict(self) -> dict[str, Any]:
        confident = set(self.confident_normal.tolist())
        return {
            "preset": self.config.preset,
            "config": self.config.model_dump(mode="json", include={"propagation", "pseudo"}),
            "abnormal_fraction": self.abnormal_fraction,
            "num_abnormal": int(self.abnormal.sum()),
            "num_confident_normal": len(confident),
            "skipped_short": self.skipped,
            "videos": {
                video_id: {
                    "num_snippets": len(z),
                    "video_score": float(score),
                    "abnormal": bool(abnormal),
                    "confident_normal": index in confident,
                    "z": z.tolist(),
                    "pseudo_labels": labels.astype(int).tolist(),
                }
                for index, (video_id, z, score, abnormal, labels) in enumerate(
                    zip(self.video_ids, self.z, self.video_scores, self.abnormal, self.snippet_labels, strict=True)
                )
            },
        }


def propagate_feature_set(
    features: FeatureSet, config: LANPConfig, *, device: str = "auto", skip_short: bool = False
) -> PropagationResult:
    """Propagate every video of ``features`` and pseudo-label them (``config.propagation`` and ``config.pseudo``)."""
    arrays = load_training_features(features)
    short = [vid for vid, array in zip(features.video_ids, arrays, strict=True) if array.shape[0] < MIN_SNIPPETS]
    if short and not skip_short:
        raise PropagationError(
            f"fewer than {MIN_SNIPPETS} snippets (also: {', '.join(short[1:6]) or 'no other video'}); "
            "pass --skip-short to leave such videos out",
            short[0],
        )
    left_out = set(short)
    kept = [(vid, array) for vid, array in zip(features.video_ids, arrays, strict=True) if vid not in left_out]
    if not kept:
        raise PropagationError("every video is shorter than 3 snippets", features.source or "feature set")
    video_ids = [vid for vid, _ in kept]
    arrays = [array for _, array in kept]
    target = resolve_device(config.train.device if device == "auto" else device)
    seed = config.train.seed
    propagation = propagate_videos(arrays, config.propagation, device=target, seed=seed, video_ids=video_ids)
    distances = None
    if config.bank.enabled and len(arrays) > 1:  # the labels training would make: joint evidence with the bank
        distances = build_bank(arrays, config.bank).archive_distances(arrays)
    labels = pseudo_labels_of(arrays, propagation, distances, config, target)
    z = propagation.z
    return PropagationResult(
        video_ids, z, labels.video_scores, labels.abnormal, labels.confident_normal, labels.snippet_labels,
        labels.abnormal_fraction, short, config,
    )


def write_propagation(path: str | Path, result: PropagationResult) -> Path:
    """Write the result as JSON atomically (readers never see a torn file)."""
    target = Path(path)
    atomic_write_bytes(target, json.dumps(result.to_dict()).encode())
    return target
