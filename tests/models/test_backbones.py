"""Backbone registry: pooled feature dimensions, seeded random weights, and applying state dicts."""

from __future__ import annotations

import pytest
import torch

from lanp_vad.models.backbones import BACKBONES, BackboneError, apply_state_dict, backbone_info, build_backbone


def _differ(first: torch.Tensor, second: torch.Tensor) -> bool:
    """Clearly different, relative to their scale (random-init EfficientNet features are ~1e-10)."""
    return bool((first - second).abs().max() > 1e-3 * torch.maximum(first.abs().max(), second.abs().max()))


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_pooled_features_have_the_registered_dimension(name: str) -> None:
    info = backbone_info(name)
    backbone = build_backbone(name, seed=0)
    # 4 frames of 32 px: global pooling makes any size work, and shapes do not need 224 px.
    clips = torch.randn(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        features = backbone(clips)
    assert features.shape == (2, info.dim)
    assert torch.isfinite(features).all()
    assert _differ(features[0], features[1]), "two different clips gave the same features"


def test_resnet_family_is_2048_d_and_efficientnet_1280_d() -> None:
    for name in ("i3d_r50", "slow_r50", "r2plus1d_r50", "csn_r101", "resnext101_3d", "x3d_m"):
        assert BACKBONES[name].dim == 2048
    assert BACKBONES["efficientnet_lite0"].dim == 1280


def test_csn_r101_runs_on_16_frame_snippets() -> None:
    backbone = build_backbone("csn_r101", seed=0)
    with torch.inference_mode():
        assert backbone(torch.randn(1, 3, 16, 32, 32)).shape == (1, 2048)


def test_random_init_is_deterministic_per_seed() -> None:
    first = build_backbone("x3d_xs", seed=7).state_dict()
    again = build_backbone("x3d_xs", seed=7).state_dict()
    other = build_backbone("x3d_xs", seed=8).state_dict()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first if first[key].is_floating_point())


def test_random_init_does_not_disturb_the_global_generator() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_backbone("efficientnet_lite0", seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_resnext101_has_hara_checkpoint_layout() -> None:
    keys = build_backbone("resnext101_3d").network.state_dict()
    assert keys["layer1.0.conv2.weight"].shape == (128, 4, 3, 3, 3)  # inner width out/2, 32 groups
    assert keys["layer3.22.conv3.weight"].shape == (1024, 512, 1, 1, 1)  # 23 blocks in layer3
    assert "layer4.2.bn3.running_mean" in keys and keys["fc.weight"].shape == (400, 2048)


def test_state_dict_with_dataparallel_prefix_applies_exactly() -> None:
    source = build_backbone("x3d_xs", seed=1)
    target = build_backbone("x3d_xs", seed=2)
    clips = torch.randn(1, 3, 4, 32, 32)
    with torch.inference_mode():
        assert _differ(source(clips), target(clips))
        apply_state_dict(target, {f"module.{key}": value for key, value in source.network.state_dict().items()})
        assert torch.equal(source(clips), target(clips))


def test_misfitting_state_dict_names_the_keys() -> None:
    backbone = build_backbone("x3d_xs")
    state = build_backbone("x3d_xs").network.state_dict()
    state.pop("blocks.0.conv.conv_t.weight")
    state["surprise.weight"] = torch.zeros(1)
    with pytest.raises(BackboneError, match=r"missing \(blocks.0.conv.conv_t.weight\).*unexpected \(surprise"):
        apply_state_dict(backbone, state)


def test_unknown_backbone_lists_the_known_ones() -> None:
    with pytest.raises(BackboneError, match="i3d_r50"):
        build_backbone("resnet9000")
