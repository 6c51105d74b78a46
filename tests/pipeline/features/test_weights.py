"""Weights: zoo files from the torch hub cache without network, local checkpoints, refusing pickles, identities."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lanp_vad.models.backbones import build_backbone
from lanp_vad.pipeline.features import weights
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.features.weights import WeightsError, create_backbone, hub_checkpoint_path


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private TORCH_HOME, and any download attempt goes to a dead proxy (so no test can reach the network)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    return tmp_path / "torch"


def _features(backbone: torch.nn.Module) -> torch.Tensor:
    with torch.inference_mode():
        return backbone(torch.ones(1, 3, 4, 32, 32))


def test_zoo_file_in_hub_cache_loads_offline_and_its_sha256_lands_in_the_spec(
    torch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_download(url: str, destination: Path) -> None:
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(weights, "download_checkpoint", no_download)
    source = build_backbone("x3d_xs", seed=3)
    path = hub_checkpoint_path("X3D_XS.pyth")
    assert path == torch_home / "hub" / "checkpoints" / "X3D_XS.pyth"
    path.parent.mkdir(parents=True)
    torch.save({"model_state": source.network.state_dict()}, path)  # the zoo's layout
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    loaded = create_backbone("x3d_xs", weights="pretrained")
    assert loaded.weights == f"X3D_XS.pyth:{digest}"
    assert torch.equal(_features(loaded.backbone), _features(source))

    extractor = FeatureExtractor(ExtractionConfig(backbone="x3d_xs", weights="pretrained", device="cpu"))
    assert extractor.spec.weights == f"X3D_XS.pyth:{digest}"


def test_missing_zoo_file_offline_says_where_to_put_it(torch_home: Path) -> None:
    expected = torch_home / "hub" / "checkpoints" / "I3D_8x8_R50.pyth"
    with pytest.raises(WeightsError) as error:
        create_backbone("i3d_r50", weights="pretrained")
    assert f"copy I3D_8x8_R50.pyth to {expected}" in str(error.value)
    assert not expected.exists(), "a failed download must not leave a partial file"


def test_backbone_without_public_url_says_where_to_put_the_file(torch_home: Path) -> None:
    with pytest.raises(WeightsError, match=r"put the checkpoint there \(resnext-101-kinetics.pth\)"):
        create_backbone("resnext101_3d", weights="pretrained")


def test_efficientnet_lite0_pretrained_weights_come_from_the_wheel(torch_home: Path) -> None:
    loaded = create_backbone("efficientnet_lite0", weights="pretrained")
    name, digest = loaded.weights.split(":")
    assert name == "efficientnet-lite0-57934424.pth" and len(digest) == 64
    assert not (torch_home / "hub").exists()


def test_pickled_checkpoint_is_refused_without_opt_in(tmp_path: Path) -> None:
    path = tmp_path / "hara.pth"
    state = {f"module.{key}": value for key, value in build_backbone("x3d_xs", seed=4).network.state_dict().items()}
    torch.save({"state_dict": state, "opts": argparse.Namespace(arch="x3d")}, path)
    with pytest.raises(WeightsError, match="--allow-pickle"):
        create_backbone("x3d_xs", weights=str(path))
    loaded = create_backbone("x3d_xs", weights=str(path), allow_pickle=True)
    assert torch.equal(_features(loaded.backbone), _features(build_backbone("x3d_xs", seed=4)))


def test_safetensors_checkpoint_loads_and_records_its_hash(tmp_path: Path) -> None:
    path = tmp_path / "x3d.safetensors"
    source = build_backbone("x3d_xs", seed=5)
    save_file({key: value.contiguous() for key, value in source.network.state_dict().items()}, str(path))
    loaded = create_backbone("x3d_xs", weights=str(path))
    assert loaded.weights == f"x3d.safetensors:{hashlib.sha256(path.read_bytes()).hexdigest()}"
    assert torch.equal(_features(loaded.backbone), _features(source))


def test_checkpoint_of_another_backbone_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(build_backbone("efficientnet_lite0").network.state_dict(), path)
    with pytest.raises(WeightsError, match=r"other.pt: the checkpoint does not fit x3d_xs"):
        create_backbone("x3d_xs", weights=str(path))


def test_random_init_identity_and_bad_seed() -> None:
    assert create_backbone("efficientnet_lite0", weights="random-init:11").weights == "random-init:11"
    with pytest.raises(WeightsError, match="integer seed"):
        create_backbone("efficientnet_lite0", weights="random-init:abc")
    with pytest.raises(WeightsError, match="does not exist"):
        create_backbone("efficientnet_lite0", weights="/nonexistent/weights.pt")
