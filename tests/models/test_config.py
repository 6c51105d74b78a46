"""The typed method config: presets, overrides and round trips."""

import pytest

from lanp_vad.models.config import PRESETS, LANPConfig, apply_overrides, preset


def test_presets_differ_where_the_paper_and_the_code_differ():
    paper, reference, reference_sh = preset("paper"), preset("reference"), preset("reference-sh")
    assert paper.propagation.seeds == "first_last" and reference.propagation.seeds == "reference"
    assert paper.propagation.affinity == "gaussian" and reference.propagation.affinity == "rms"
    assert reference_sh.propagation.affinity == "cosine"
    assert paper.propagation.cg_maxiter is None and reference.propagation.cg_maxiter == 10
    assert round(reference_sh.pseudo.abnormal_fraction * 238) == 64
    assert {paper.preset, reference.preset, reference_sh.preset, "default"} == set(PRESETS)


def test_default_preset_is_the_reference_with_the_normality_bank_that_trains_any_archive():
    default, reference = preset("default"), preset("reference")
    assert reference.pseudo.video_score == "std" and reference.train.drop_last and not reference.train.skip_short
    assert default.pseudo.video_score == "decorrelation" and not default.train.drop_last and default.train.skip_short
    assert default.pseudo.min_confident_normal == 1 and reference.pseudo.min_confident_normal == 0
    assert default.propagation == reference.propagation
    assert default.bank.enabled and default.bank.labels == "joint" and default.bank.fusion == "mean"
    assert default.train.epochs == 100 and reference.train.epochs == 300
    assert not any(preset(name).bank.enabled for name in PRESETS if name != "default")  # the official: no bank


def test_a_config_json_written_before_the_new_switches_loads_as_the_official_behaviour():
    old = preset("reference").model_dump()
    for section, key in [("pseudo", "video_score"), ("pseudo", "min_confident_normal"), ("train", "skip_short"),
                         ("train", "pseudo_video_snippets")]:  # fmt: skip
        del old[section][key]
    assert LANPConfig.model_validate(old) == preset("reference")


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="reference-sh"):
        preset("nope")


def test_overrides_parse_types_and_keep_the_rest():
    config = apply_overrides(
        preset("reference"),
        ["train.epochs=5", "pseudo.abnormal_fraction=auto", "propagation.cg_maxiter=null", "train.device=cpu"],
    )
    assert config.train.epochs == 5
    assert config.pseudo.abnormal_fraction == "auto"
    assert config.propagation.cg_maxiter is None
    assert config.train.device == "cpu"
    assert config.propagation.affinity == "rms"


@pytest.mark.parametrize(
    "assignment",
    ["train.epoch=5", "nosection.x=1", "train=3", "train.epochs", "train.epochs=-1", "pseudo.abnormal_fraction=1.5"],
)
def test_bad_overrides_are_refused(assignment):
    with pytest.raises(ValueError):
        apply_overrides(preset("reference"), [assignment])


def test_json_round_trip_keeps_every_field():
    config = apply_overrides(preset("paper"), ["reweight.enabled=false", "propagation.sigma=0.5"])
    assert LANPConfig.from_json(config.to_json()) == config
