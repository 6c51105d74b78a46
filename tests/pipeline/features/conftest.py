"""Fixtures of the features tests: one cheap extractor shared by a module."""

from __future__ import annotations

import pytest

from lanp_vad.pipeline.features.extractor import FeatureExtractor
from tests.pipeline.features.fast import FAST


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(FAST)
