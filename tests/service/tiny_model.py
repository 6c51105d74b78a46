"""A small real model directory for the scorer and service tests.

The backbone is the offline-pretrained EfficientNet-Lite0 at 64 px with one frame per snippet (fast on CPU); the
classifier is a seeded, untrained LANP head (the contract under test is scoring and serving, not accuracy).
"""

from __future__ import annotations

from pathlib import Path

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
