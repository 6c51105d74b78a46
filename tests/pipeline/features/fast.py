"""Cheap extraction settings for the features tests: EfficientNet-Lite0 (real weights), 2 frames a snippet at 32 px."""

from lanp_vad.pipeline.features.config import ExtractionConfig

FAST = ExtractionConfig(backbone="efficientnet_lite0", device="cpu", frames_per_snippet=2, crop_size=32, batch_size=8)
