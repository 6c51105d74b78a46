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


def test_one_name_per_setting_in_the_config_the_spec_and_the_flags() -> None:
    """Every setting a config and a spec share is one ``lanp extract`` flag of the same name, and the spec's
    settings that a config can ask for are all shared (no renames on the way: ``size`` -> ``crop_size``)."""
    import argparse

    from lanp_vad.cli import extract
    from lanp_vad.pipeline.features.config import SPEC_SETTINGS

    parser = argparse.ArgumentParser()
    extract.register(parser.add_subparsers())
    flags = {option for action in parser._subparsers._group_actions[0].choices["extract"]._actions
             for option in action.option_strings}
    assert {"frames_per_snippet", "crop_size", "resize", "crops", "fps", "max_side", "backbone"} <= set(SPEC_SETTINGS)
    for name in set(SPEC_SETTINGS) - {"snippet_length", "stride", "pad_last", "decode_short_side"}:
        assert f"--{name.replace('_', '-')}" in flags, name


def test_contradicting_settings_are_errors_not_clamps() -> None:
    with pytest.raises(ValidationError, match="frames_per_snippet 32 exceeds snippet_length 16"):
        ExtractionConfig(frames_per_snippet=32)
    with pytest.raises(ValidationError, match="crop_size 300 exceeds resize 256"):
        ExtractionConfig(crop_size=300, resize=256)
    with pytest.raises(UserError, match="crop_size 224 exceeds resize 200"):  # the backbone's crop, resolved
        FeatureExtractor(ExtractionConfig(weights="random-init:1", device="cpu", resize=200, frames_per_snippet=1))


def test_a_stored_spec_of_another_version_is_refused_naming_what_it_lacks(tmp_path) -> None:
    import json

    spec = FeatureExtractor(ExtractionConfig(weights="random-init:1", device="cpu", crop_size=32,
                                             frames_per_snippet=1)).spec
    spec.save(tmp_path)
    assert FeatureSpec.load(tmp_path) == spec
    stored = json.loads((tmp_path / "feature_spec.json").read_text())
    del stored["decode_short_side"]
    (tmp_path / "feature_spec.json").write_text(json.dumps(stored))
    with pytest.raises(UserError, match="lacks decode_short_side"):
        FeatureSpec.load(tmp_path)


def test_the_default_spec_feeds_8_of_16_frames_and_16_stays_one_option_away() -> None:
    """The product's default spec (chosen on the accuracy grid by cost and accuracy) samples 8 frames of each
    16-frame snippet at 224 px; the 16-frame spec is ``frames_per_snippet=16`` and is a different spec."""
    default = FeatureExtractor(ExtractionConfig(device="cpu")).spec
    sixteen = FeatureExtractor(ExtractionConfig(device="cpu", frames_per_snippet=16)).spec
    assert (default.backbone, default.frames_per_snippet, default.crop_size, default.resize) == (
        "efficientnet_lite0", 8, 224, 256)
    assert default.snippet_length == default.stride == SNIPPET_LENGTH
    assert sixteen.frames_per_snippet == 16 and sixteen.digest() != default.digest()
