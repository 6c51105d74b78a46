"""A small real model directory for the scorer and service tests.

The backbone is the offline-pretrained EfficientNet-Lite0 at 64 px with one frame per snippet (fast on CPU); the
classifier is a seeded, untrained LANP head (the contract under test is scoring and serving, not accuracy).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from lanp_vad.models.classifier import create_classifier
from lanp_vad.models.config import ClassifierConfig, LANPConfig
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.training.model_dir import save_model

THRESHOLD = 0.5


def tiny_extractor(device: str = "cpu") -> FeatureExtractor:
    return FeatureExtractor(ExtractionConfig(frames_per_snippet=1, crop_size=64, device=device))


def make_tiny_model(directory: Path, **classifier: object) -> Path:
    """Write the model directory and return it; ``classifier``: other head settings (e.g. its video context)."""
    spec = tiny_extractor().spec
    config = LANPConfig(classifier=ClassifierConfig(hidden=32, dropout=0.0, **classifier))
    classifier = create_classifier(dim=spec.dim, config=config.classifier, seed=3)
    return save_model(directory, classifier, spec, config, {"threshold": THRESHOLD, "note": "untrained test head"})


def make_shifted_model(directory: Path) -> Path:
    """The tiny model, its normal learned from flat grey footage: its feature statistics (what ``lanp train``
    stores for the domain-shift warning) make any moving scene foreign, so every result and stream warns."""
    from lanp_vad.pipeline.training.domain import fit_feature_stats
    from tests.videos import write_video

    directory.mkdir(parents=True, exist_ok=True)
    grey = write_video(directory / "grey.mp4", num_frames=160, width=96, height=64, fps=10,
                       content=lambda index, height, width: np.full((height, width, 3), 90 + index % 3, np.uint8))
    extractor = tiny_extractor()
    try:
        features = extractor.extract_video(grey).features
    finally:
        extractor.close()
    model = make_tiny_model(directory / "grey-model")
    fit_feature_stats([features]).save(model)
    return model


def make_detector_model(directory: Path) -> Path:
    """A model of the default preset: trained for a few epochs on the tiny extractor's features of six generated
    clips (taken as an archive that may hold anomalies), so it scores with its classifier, normality bank and
    calibration, and a stream with its stream calibration."""
    from lanp_vad.models.config import apply_overrides, preset
    from lanp_vad.pipeline.research.datasets import store_arrays
    from lanp_vad.pipeline.training.trainer import train_lanp
    from tests.videos import moving_square, write_video

    def lit(brightness: int) -> Callable[[int, int, int], np.ndarray]:  # each clip its own light: a spread of normal
        return lambda index, height, width: np.minimum(moving_square(index, height, width).astype(np.int16)
                                                       + brightness, 255).astype(np.uint8)

    directory.mkdir(parents=True, exist_ok=True)
    extractor = tiny_extractor()
    try:
        arrays = {
            f"clip{index}": extractor.extract_video(write_video(
                directory / f"clip{index}.mp4", num_frames=128 + 16 * index, width=96, height=64, fps=25,
                content=lit(12 * index),
            )).features
            for index in range(6)
        }  # fmt: skip
    finally:
        extractor.close()
    features = store_arrays(directory / "features", extractor.spec, arrays)
    config = apply_overrides(preset("default"), ["train.epochs=5", "train.batch_size=6", "classifier.hidden=32",
                                                 "bank.archive=mixed"])  # fmt: skip
    return train_lanp(features, config, progress=False).save(directory / "model", extractor.spec, config)
