"""Video backbones that turn a batch of snippets into pooled feature vectors (the layer before the classifier).

Every backbone takes normalised clips ``(B, 3, L, H, W)`` and returns ``(B, D)``. The pytorchvideo networks keep
their full module tree (classification head included), so the model zoo's checkpoints load strictly; only the
head's fixed-size pooling is swapped for global average pooling, which makes any frame count and crop size work
(e.g. ``csn_r101``, trained on 32 frames, on 16-frame snippets). ``resnext101_3d`` is a 3D-ResNeXt-101 32x4d laid
out like Hara et al.'s Kinetics checkpoints (the features LANP reports). ``efficientnet_lite0`` is a per-frame
ImageNet network whose frame features are averaged over the snippet.

Pure torch: reading weight files is the pipeline's job (``pipeline.features.weights``); here a given state dict is
applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from lanp_vad.models.errors import ErrorKind, UserError

KINETICS_MEAN = (0.45, 0.45, 0.45)
KINETICS_STD = (0.225, 0.225, 0.225)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Hara et al.'s extractor subtracts the ActivityNet mean on 0-255 pixels and does not divide by a std.
HARA_MEAN = (114.7748 / 255, 107.7354 / 255, 99.4750 / 255)
HARA_STD = (1 / 255, 1 / 255, 1 / 255)
PYTORCHVIDEO_ZOO = "https://dl.fbaipublicfiles.com/pytorchvideo/model_zoo/kinetics"


class BackboneError(UserError):
    """An unknown backbone name, or a state dict that does not fit the named backbone."""

    kind = ErrorKind.INVALID_WEIGHTS


@dataclass(frozen=True)
class BackboneInfo:
    """What a backbone expects and gives. ``mean``/``std`` apply to pixels scaled to [0, 1].

    The RTFM-style I3D normalisation (114.75 / 57.375 on 0-255 pixels) is exactly the Kinetics 0.45 / 0.225 on
    [0, 1] that the pytorchvideo models use, so the two conventions share one setting.
    """

    name: str
    dim: int
    input_frames: int
    crop_size: int
    resize: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    checkpoint_file: str
    checkpoint_url: str | None
    layer: str

    def describe(self) -> str:
        return f"{self.name}: {self.dim}-d, {self.input_frames} frames at {self.crop_size}px"


class VideoBackbone(nn.Module):
    """A feature network: normalised clips ``(B, 3, L, H, W)`` -> pooled features ``(B, dim)``."""

    def __init__(self, info: BackboneInfo, network: nn.Module):
        super().__init__()
        self.info = info
        self.network = network

    @property
    def dim(self) -> int:
        return self.info.dim

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class PyTorchVideoBackbone(VideoBackbone):
    """A pytorchvideo ``Net`` run up to its head's pooling (global average instead of a fixed kernel)."""

    def __init__(self, info: BackboneInfo, network: nn.Module):
        super().__init__(info, network)
        head = network.blocks[-1]
        if hasattr(head.pool, "post_conv"):  # X3D: ProjectedPool = 1x1x1 conv, pool, 1x1x1 conv
            head.pool.pool = nn.AdaptiveAvgPool3d(1)
        else:
            head.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips
        for block in self.network.blocks[:-1]:
            x = block(x)
        return self.network.blocks[-1].pool(x).flatten(1)


class FramewiseBackbone(VideoBackbone):
    """An image network applied to every frame; its pooled frame features are averaged over the snippet."""

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, channels, length, height, width = clips.shape
        frames = clips.transpose(1, 2).reshape(batch * length, channels, height, width)
        maps = self.network.extract_features(frames)
        return maps.mean(dim=(2, 3)).view(batch, length, -1).mean(dim=1)


class _ResNeXtBottleneck(nn.Module):
    """Hara et al.'s ResNeXt block: 1x1x1 -> grouped 3x3x3 (inner width = out / 2) -> 1x1x1, plus shortcut."""

    expansion = 2

    def __init__(self, in_channels: int, planes: int, cardinality: int, stride: int):
        super().__init__()
        inner = cardinality * (planes // 32)
        out_channels = planes * self.expansion
        self.conv1 = nn.Conv3d(in_channels, inner, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm3d(inner)
        self.conv2 = nn.Conv3d(inner, inner, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm3d(inner)
        self.conv3 = nn.Conv3d(inner, out_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm3d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + shortcut)


class ResNeXt3D(nn.Module):
    """3D-ResNeXt with the module names of Hara et al.'s checkpoints (conv1, bn1, layer1-4, fc)."""

    def __init__(self, layers: tuple[int, int, int, int] = (3, 4, 23, 3), cardinality: int = 32,
                 num_classes: int = 400):
        super().__init__()
        self.conv1 = nn.Conv3d(3, 64, kernel_size=7, stride=(1, 2, 2), padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        channels = 64
        stages = []
        for index, (planes, blocks) in enumerate(zip((128, 256, 512, 1024), layers, strict=True)):
            stage = []
            for block in range(blocks):
                stride = 2 if index > 0 and block == 0 else 1
                stage.append(_ResNeXtBottleneck(channels, planes, cardinality, stride))
                channels = planes * _ResNeXtBottleneck.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(channels, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
            elif isinstance(module, nn.BatchNorm3d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def pooled(self, clips: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(clips))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)


class ResNeXtBackbone(VideoBackbone):
    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.network.pooled(clips)


def _pytorchvideo(builder_name: str, **kwargs: object) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from pytorchvideo.models import hub

        return getattr(hub, builder_name)(pretrained=False, **kwargs)

    return build


def _efficientnet_lite0() -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    return EfficientNet.from_name("efficientnet-lite0")


def _info(name: str, dim: int, frames: int, crop: int, resize: int, checkpoint: str, *, url: str | None = None,
          mean: tuple[float, float, float] = KINETICS_MEAN, std: tuple[float, float, float] = KINETICS_STD,
          layer: str = "head.pool") -> BackboneInfo:
    return BackboneInfo(name, dim, frames, crop, resize, mean, std, checkpoint, url, layer)


def _zoo(file_name: str) -> str:
    return f"{PYTORCHVIDEO_ZOO}/{file_name}"


# name -> (info, network builder, wrapper class)
_REGISTRY: dict[str, tuple[BackboneInfo, Callable[[], nn.Module], type[VideoBackbone]]] = {
    "i3d_r50": (_info("i3d_r50", 2048, 16, 224, 256, "I3D_8x8_R50.pyth", url=_zoo("I3D_8x8_R50.pyth")),
                _pytorchvideo("i3d_r50"), PyTorchVideoBackbone),
    "slow_r50": (_info("slow_r50", 2048, 8, 224, 256, "SLOW_8x8_R50.pyth", url=_zoo("SLOW_8x8_R50.pyth")),
                 _pytorchvideo("slow_r50"), PyTorchVideoBackbone),
    "x3d_xs": (_info("x3d_xs", 2048, 4, 160, 182, "X3D_XS.pyth", url=_zoo("X3D_XS.pyth")),
               _pytorchvideo("x3d_xs"), PyTorchVideoBackbone),
    "x3d_s": (_info("x3d_s", 2048, 13, 160, 182, "X3D_S.pyth", url=_zoo("X3D_S.pyth")),
              _pytorchvideo("x3d_s"), PyTorchVideoBackbone),
    "x3d_m": (_info("x3d_m", 2048, 16, 224, 256, "X3D_M.pyth", url=_zoo("X3D_M.pyth")),
              _pytorchvideo("x3d_m"), PyTorchVideoBackbone),
    "x3d_l": (_info("x3d_l", 2048, 16, 312, 356, "X3D_L.pyth", url=_zoo("X3D_L.pyth")),
              _pytorchvideo("x3d_l"), PyTorchVideoBackbone),
    "r2plus1d_r50": (_info("r2plus1d_r50", 2048, 16, 224, 256, "R2PLUS1D_16x4_R50.pyth",
                           url=_zoo("R2PLUS1D_16x4_R50.pyth")),
                     _pytorchvideo("r2plus1d_r50"), PyTorchVideoBackbone),
    "csn_r101": (_info("csn_r101", 2048, 16, 224, 256, "CSN_32x2_R101.pyth", url=_zoo("CSN_32x2_R101.pyth")),
                 _pytorchvideo("csn_r101"), PyTorchVideoBackbone),
    # Hara et al. publish this checkpoint on Google Drive only: no URL, the user places the file.
    "resnext101_3d": (_info("resnext101_3d", 2048, 16, 112, 112, "resnext-101-kinetics.pth", mean=HARA_MEAN,
                            std=HARA_STD, layer="avgpool"),
                      ResNeXt3D, ResNeXtBackbone),
    # A per-frame network: 8 frames of each 16-frame snippet, chosen by cost and accuracy on the accuracy grid
    # (docs/performance.md, "The feature spec by cost and accuracy").
    "efficientnet_lite0": (_info("efficientnet_lite0", 1280, 8, 224, 256, "efficientnet-lite0-57934424.pth",
                                 mean=IMAGENET_MEAN, std=IMAGENET_STD, layer="conv_head, frame-averaged"),
                           _efficientnet_lite0, FramewiseBackbone),
}

BACKBONES: dict[str, BackboneInfo] = {name: entry[0] for name, entry in _REGISTRY.items()}


def backbone_info(name: str) -> BackboneInfo:
    """The registry entry of ``name``, or a BackboneError listing the known names."""
    if name not in _REGISTRY:
        raise BackboneError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name: str, *, seed: int = 0) -> VideoBackbone:
    """A backbone with seeded random weights (the same seed gives the same weights), in eval mode."""
    info = backbone_info(name)
    _, builder, wrapper = _REGISTRY[name]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = wrapper(info, builder())
    return backbone.eval()


_WRAPPER_PREFIXES = ("module.", "model.", "network.")


def apply_state_dict(backbone: VideoBackbone, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Load a checkpoint's state dict into the backbone's network, strictly, naming what does not fit.

    ``module.`` (DataParallel) and ``model.`` prefixes are removed first; EfficientNet-Lite0 checkpoints without
    the classifier (``_fc``) are accepted since the features come from before it.
    """
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        cleaned[key] = value
    expected = backbone.network.state_dict()
    optional = {key for key in expected if key.startswith("_fc.")} if isinstance(backbone, FramewiseBackbone) else set()
    missing = sorted(set(expected) - set(cleaned) - optional)
    unexpected = sorted(set(cleaned) - set(expected))
    wrong_shape = sorted(
        f"{key} {tuple(cleaned[key].shape)} != {tuple(expected[key].shape)}"
        for key in set(cleaned) & set(expected)
        if tuple(cleaned[key].shape) != tuple(expected[key].shape)
    )
    if missing or unexpected or wrong_shape:
        problems = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                problems.append(f"{len(keys)} {label} ({', '.join(keys[:3])}{', ...' if len(keys) > 3 else ''})")
        raise BackboneError(f"the checkpoint does not fit {backbone.info.name}: {'; '.join(problems)}")
    backbone.network.load_state_dict(cleaned, strict=not optional)
