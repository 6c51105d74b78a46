"""The snippet transform of ``transforms.py`` in numpy, for the torch-free path (an exported backbone).

Same steps, same numbers (to float32 rounding; tests/pipeline/scoring/test_export.py compares them): the short-side
resize is torch's antialiased bilinear (``interpolate(..., antialias=True)``, PIL's triangle filter), applied one
axis at a time as a weighted sum over each output pixel's few input pixels; then the center crop or the ten crops
in ``TenCrop``'s order; then per-channel normalisation of pixels scaled to [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np


@lru_cache(maxsize=32)
def resize_weights(input_size: int, output_size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(indices, weights)``, both ``(output_size, taps)``: output pixel ``i`` is ``sum_k weights[i, k] *
    input[indices[i, k]]``. torch's antialiased bilinear kernel: a triangle filter widened by the scale when
    downscaling, centred on each output pixel's centre, its taps clipped to the image and normalised to sum 1.
    Computed in float32 with torch's roundings (its CPU kernel's), so the weights are torch's to the last bit."""
    f32 = np.float32
    scale = f32(input_size) / f32(output_size)
    support = scale if scale >= 1.0 else f32(1.0)
    inverse = f32(1.0 / np.float64(scale)) if scale >= 1.0 else f32(1.0)
    centres = (np.float64(scale) * (np.arange(output_size) + 0.5)).astype(f32)
    starts = np.maximum((centres - support + 0.5).astype(np.int64), 0)  # astype truncates, as C++'s cast
    stops = np.minimum((centres + support + 0.5).astype(np.int64), input_size)
    taps = int((stops - starts).max())
    indices = starts[:, None] + np.arange(taps)[None, :]
    distance = np.abs((((indices.astype(f32) - centres[:, None]).astype(np.float64) + 0.5) * inverse).astype(f32))
    weights = np.where((distance < 1) & (indices < stops[:, None]), f32(1) - distance, f32(0)).astype(f32)
    total = np.zeros(output_size, f32)
    for tap in range(taps):  # summed tap by tap in float32, in torch's order
        total += weights[:, tap]
    return np.minimum(indices, input_size - 1), weights / total[:, None]


def _resize_axis(frames: np.ndarray, axis: int, size: int, keep: slice = slice(None)) -> np.ndarray:
    """``frames`` resized to ``size`` along ``axis``, only the output pixels in ``keep`` computed (a crop's)."""
    if frames.shape[axis] == size:
        return frames[(slice(None),) * axis + (keep,)]
    indices, weights = resize_weights(frames.shape[axis], size)
    indices, weights = indices[keep], weights[keep]
    shape = [1] * frames.ndim
    shape[axis] = indices.shape[0]
    result = np.take(frames, indices[:, 0], axis=axis) * weights[:, 0].reshape(shape)
    for tap in range(1, indices.shape[1]):
        result += np.take(frames, indices[:, tap], axis=axis) * weights[:, tap].reshape(shape)
    return result


def resized_size(height: int, width: int, size: int) -> tuple[int, int]:
    """The frame size after resizing the shorter side to ``size`` (long side truncated, as torchvision)."""
    if min(height, width) == size:
        return height, width
    return (size, int(size * width / height)) if height <= width else (int(size * height / width), size)


def crop_corners(height: int, width: int, size: int, crops: Literal[1, 10]) -> list[tuple[int, int]]:
    """Top-left corners of the center crop, or of the five crops of ``TenCrop`` (four corners, then the center)."""
    if size > height or size > width:
        raise ValueError(f"crop {size} is larger than the frames ({height}x{width})")
    center = (int(round((height - size) / 2.0)), int(round((width - size) / 2.0)))
    if crops == 1:
        return [center]
    return [(0, 0), (0, width - size), (height - size, 0), (height - size, width - size), center]


@dataclass(frozen=True)
class ArraySnippetTransform:
    """uint8 snippets ``(N, L, H, W, 3)`` -> normalised clips ``(N, crops, 3, L, S, S)`` (float32), in numpy."""

    resize: int
    crop_size: int
    crops: Literal[1, 10]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, snippets: np.ndarray) -> np.ndarray:
        if snippets.dtype != np.uint8 or snippets.ndim != 5 or snippets.shape[-1] != 3:
            raise ValueError(f"expected uint8 snippets (N, L, H, W, 3), got {snippets.dtype} {snippets.shape}")
        count, length, height, width, _ = snippets.shape
        frames = snippets.reshape(-1, height, width, 3)
        size = self.crop_size
        rows, cols = resized_size(height, width, self.resize)
        corners = crop_corners(rows, cols, size, self.crops)
        # A center crop needs only its own pixels of the resized frame; the ten crops need all of it. The first
        # pass reads the uint8 frames, the scale to [0, 1] comes after the resize (the same up to float32 rounding).
        keep_rows, keep_cols = (slice(corners[0][0], corners[0][0] + size), slice(corners[0][1], corners[0][1] + size)
                                ) if self.crops == 1 else (slice(None), slice(None))
        resized = _resize_axis(_resize_axis(frames, 2, cols, keep_cols), 1, rows, keep_rows).astype(np.float32)
        resized /= np.float32(255.0)
        if self.crops == 1:
            views = [resized]
        else:
            flipped = resized[:, :, ::-1]
            views = [view[:, y : y + size, x : x + size] for view in (resized, flipped) for y, x in corners]
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        clips = np.empty((count, self.crops, 3, length, size, size), dtype=np.float32)
        for index, view in enumerate(views):  # (N*L, S, S, 3) -> (N, 3, L, S, S), normalised
            normalised = (view - mean) / std
            clips[:, index] = normalised.reshape(count, length, size, size, 3).transpose(0, 4, 1, 2, 3)
        return clips
