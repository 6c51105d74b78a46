"""The extraction config: the one place an extractor is built from, and its round trip through the spec."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lanp_vad.models.errors import UserError
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.features.spec import FeatureSpec, SpecMismatchError
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH


def test_from_spec_rebuilds_an_extractor_of_the_same_spec() -> None:
    config = ExtractionConfig(backbone="x3d_xs", weights="random-init:4", device="cpu", frames_per_snippet=2,
                              crop_size=48, fps=5.0, max_side=96, pad_last=False, crops=10)
    original = FeatureExtractor(config)
    rebuilt = FeatureExtractor.from_spec(original.spec, device="cpu", batch_size=3)
    assert rebuilt.spec == original.spec and rebuilt.decode == original.decode
    assert rebuilt.batch_size == 3 and original.spec.snippet_length == SNIPPET_LENGTH


def test_from_spec_refuses_other_weights_naming_both_specs() -> None:
    spec = FeatureExtractor(ExtractionConfig(weights="random-init:1", device="cpu", crop_size=32,
                                             frames_per_snippet=1)).spec
    pretrained_claim = spec.model_copy(update={"weights": "efficientnet-lite0-57934424.pth:0000"})
    with pytest.raises(SpecMismatchError, match="differ in weights"):
        FeatureExtractor.from_spec(pretrained_claim, device="cpu")


def test_external_features_cannot_be_extracted_again() -> None:
    with pytest.raises(UserError, match="external features"):
        ExtractionConfig.from_spec(FeatureSpec.external(dim=2048))


def test_bad_settings_are_refused_before_any_backbone_is_built() -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        ExtractionConfig(batch_size=0)
    with pytest.raises(ValidationError, match="extra"):
        ExtractionConfig(target_fps=5)  # a misspelt setting is an error, not silently ignored
