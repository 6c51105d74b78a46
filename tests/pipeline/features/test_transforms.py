"""Snippet transforms against torchvision's reference implementations on the same frames."""

from __future__ import annotations

import pytest
import torch
from torchvision import transforms as tv

from lanp_vad.pipeline.features import transforms
from lanp_vad.pipeline.features.transforms import SnippetTransform, center_crop, resize_short_side, ten_crop


def _frames(height: int = 60, width: int = 90, count: int = 3) -> torch.Tensor:
    return torch.rand(count, 3, height, width, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize(("height", "width", "size"), [(60, 90, 32), (61, 47, 30), (40, 40, 40)])
def test_ten_crop_equals_torchvision_tencrop(height: int, width: int, size: int) -> None:
    frames = _frames(height, width)
    ours = ten_crop(frames, size)
    reference = tv.TenCrop(size)(frames)
    assert len(ours) == len(reference) == 10
    for index, (mine, theirs) in enumerate(zip(ours, reference, strict=True)):
        assert torch.equal(mine, theirs), f"crop {index} differs"


def test_center_crop_equals_torchvision() -> None:
    frames = _frames(61, 90)
    assert torch.equal(center_crop(frames, 33), tv.CenterCrop(33)(frames))


def test_short_side_resize_matches_torchvision_antialiased_bilinear() -> None:
    frames = _frames(120, 180)
    ours = resize_short_side(frames, 50)
    theirs = tv.Resize(50, antialias=True)(frames)
    assert ours.shape == theirs.shape == (3, 3, 50, 75)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_snippet_transform_layout_and_normalisation() -> None:
    snippets = torch.randint(0, 256, (2, 4, 48, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    transform = SnippetTransform(resize=48, crop_size=32, crops=10, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.5))
    clips = transform(snippets)
    assert clips.shape == (2, 10, 3, 4, 32, 32)
    # crop 0 is the top-left corner, no resize needed (short side already 48): pixel (0, 0) of snippet 1, frame 2
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.5])
    expected = (snippets[1, 2, 0, 0].float() / 255 - mean) / std
    assert torch.allclose(clips[1, 0, :, 2, 0, 0], expected, atol=1e-6)
    # crop 5 is the top-left of the flipped frames: the original's top-right pixel
    expected = (snippets[1, 2, 0, 63].float() / 255 - mean) / std
    assert torch.allclose(clips[1, 5, :, 2, 0, 0], expected, atol=1e-6)


def _whole_batch_reference(snippets: torch.Tensor, transform: SnippetTransform) -> torch.Tensor:
    """The transform's steps on the whole batch at once (channels-last frames, stacked crops), as first written."""
    count, length, height, width, _ = snippets.shape
    frames = snippets.reshape(count * length, height, width, 3).permute(0, 3, 1, 2).float().div_(255.0)
    frames = resize_short_side(frames, transform.resize)
    size = transform.crop_size
    views = ten_crop(frames, size) if transform.crops == 10 else [center_crop(frames, size)]
    clips = torch.stack(views, dim=1)
    mean = torch.tensor(transform.mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(transform.std).view(1, 1, 3, 1, 1)
    clips = (clips - mean) / std
    return clips.view(count, length, transform.crops, 3, size, size).permute(0, 2, 3, 1, 4, 5).contiguous()


@pytest.mark.parametrize("crops", [1, 10])
@pytest.mark.parametrize("resize", [36, 45], ids=["resized", "decoded-at-the-resize"])
def test_snippet_transform_in_groups_is_bit_identical_to_the_whole_batch(crops: int, resize: int,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # groups of two snippets (and a last one of one): every group boundary must land where it belongs; frames
    # already at the resize (decoded there) are cropped before they become floats, with the same result
    monkeypatch.setattr(transforms, "GROUP_BYTES", 2 * 4 * 3 * 45 * 70 * 4)
    snippets = torch.randint(0, 256, (5, 4, 45, 70, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    transform = SnippetTransform(resize=resize, crop_size=32, crops=crops, mean=(0.5, 0.4, 0.3),
                                 std=(0.2, 0.25, 0.5))
    clips = transform(snippets)
    assert clips.is_contiguous()
    assert torch.equal(clips, _whole_batch_reference(snippets, transform))


def test_snippet_transform_rejects_bad_input_and_settings() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        SnippetTransform(resize=100, crop_size=112, crops=1, mean=(0, 0, 0), std=(1, 1, 1))
    transform = SnippetTransform(resize=32, crop_size=32, crops=1, mean=(0, 0, 0), std=(1, 1, 1))
    with pytest.raises(ValueError, match="uint8"):
        transform(torch.zeros(1, 2, 32, 32, 3))
