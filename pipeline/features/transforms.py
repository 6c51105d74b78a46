"""Snippet transforms on batched tensors, on whatever device the frames are on (the GPU when extracting there).

Decoded snippets arrive as uint8 ``(N, L, H, W, 3)``; the backbone wants normalised float clips. The steps are the
field's: short-side resize (bilinear, antialiased), then a center crop or the ten crops of torchvision's
``TenCrop`` (four corners and the center, then the same five of the horizontally flipped frames, in that order),
then per-channel normalisation of pixels scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch.nn import functional

GROUP_BYTES = 32 << 20
"""Snippets are transformed a few at a time, so that each group's float frames fit in about this much: buffers
below glibc's largest mmap threshold are reused instead of being faulted in afresh for every batch. With the
frames made channels-first before the resize (float NCHW resizes ~1.5x faster than the channels-last view) and
the normalisation written in place into the result, the transform ran 2-3x faster than stacking whole batches,
with bit-identical output (tests/pipeline/features/test_transforms.py)."""


def resize_short_side(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Resize float frames ``(B, C, H, W)`` so the shorter side is ``size`` (long side truncated, as torchvision)."""
    height, width = frames.shape[-2:]
    if min(height, width) == size:
        return frames
    target = (size, int(size * width / height)) if height <= width else (int(size * height / width), size)
    return functional.interpolate(frames, size=target, mode="bilinear", align_corners=False, antialias=True)


def _crop(frames: torch.Tensor, top: int, left: int, size: int) -> torch.Tensor:
    return frames[..., top : top + size, left : left + size]


def _center_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def five_crop(frames: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Top-left, top-right, bottom-left, bottom-right and center crops (torchvision's FiveCrop order)."""
    height, width = frames.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop {size} is larger than the frames ({height}x{width})")
    top, left = _center_offsets(height, width, size)
    return [
        _crop(frames, 0, 0, size),
        _crop(frames, 0, width - size, size),
        _crop(frames, height - size, 0, size),
        _crop(frames, height - size, width - size, size),
        _crop(frames, top, left, size),
    ]


def ten_crop(frames: torch.Tensor, size: int) -> list[torch.Tensor]:
    """The five crops of the frames, then the five crops of the horizontally flipped frames (TenCrop's order)."""
    return five_crop(frames, size) + five_crop(frames.flip(-1), size)


def center_crop(frames: torch.Tensor, size: int) -> torch.Tensor:
    return five_crop(frames, size)[4]


@dataclass(frozen=True)
class SnippetTransform:
    """uint8 snippets ``(N, L, H, W, 3)`` -> normalised clips ``(N, crops, 3, L, S, S)`` (float32)."""

    resize: int
    crop_size: int
    crops: Literal[1, 10]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.crop_size > self.resize:
            raise ValueError(f"crop size {self.crop_size} exceeds the short-side resize {self.resize}")
        if self.crops not in (1, 10):
            raise ValueError(f"crops must be 1 or 10, got {self.crops}")

    def __call__(self, snippets: torch.Tensor) -> torch.Tensor:
        if snippets.dtype != torch.uint8 or snippets.ndim != 5 or snippets.shape[-1] != 3:
            raise ValueError(f"expected uint8 snippets (N, L, H, W, 3), got {snippets.dtype} {tuple(snippets.shape)}")
        count, length, height, width, _ = snippets.shape
        size = self.crop_size
        needs_resize = min(height, width) != self.resize
        if not needs_resize and self.crops == 1:  # decoded at the resize: only the crop is converted to float
            top, left = _center_offsets(height, width, size)
            snippets = snippets[:, :, top : top + size, left : left + size]
            height = width = size
        clips = torch.empty((count, self.crops, 3, length, size, size), dtype=torch.float32, device=snippets.device)
        by_frame = clips.permute(0, 3, 1, 2, 4, 5)  # (N, L, crops, 3, S, S): each crop is written in place
        mean = torch.tensor(self.mean, device=clips.device).view(1, 1, 3, 1, 1)
        std = torch.tensor(self.std, device=clips.device).view(1, 1, 3, 1, 1)
        step = max(1, GROUP_BYTES // (length * 3 * height * width * 4))
        for first in range(0, count, step):
            group = snippets[first : first + step]
            frames = group.reshape(-1, height, width, 3).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
            if needs_resize:
                frames = resize_short_side(frames, self.resize)
            views = ten_crop(frames, size) if self.crops == 10 else [center_crop(frames, size)]
            for index, view in enumerate(views):
                target = by_frame[first : first + group.shape[0], :, index]
                torch.sub(view.view(group.shape[0], length, 3, size, size), mean, out=target).div_(std)
        return clips
