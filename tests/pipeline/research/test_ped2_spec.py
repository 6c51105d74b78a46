"""The accuracy harness extracts the Ped2 footage with a candidate feature spec (``bench/accuracy.py --spec``):
the spec reaches the extractor, and each spec gets a cache of its own."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanp_vad.pipeline.research.accuracy import AccuracyError
from lanp_vad.pipeline.research.ped2 import extract_ped2
from tests.videos import write_video

TINY = {"frames_per_snippet": 1, "crop_size": 32, "resize": 32}


def write_ped2_layout(root: Path, clips: tuple[int, int] = (16, 12)) -> Path:
    """A stand-in for ``ucsd-ped2/videos``: 16 training and 12 test clips of 20 real H.264 frames each."""
    for split, count in zip(("train", "test"), clips, strict=True):
        folder = root / "ucsd-ped2" / "videos" / split
        folder.mkdir(parents=True)
        for index in range(count):
            write_video(folder / f"{index + 1:02d}.mp4", num_frames=20)
    return root


def test_a_candidate_spec_reaches_the_extractor_and_keeps_its_own_cache(tmp_path: Path) -> None:
    data = write_ped2_layout(tmp_path / "data")
    one = extract_ped2(data, tmp_path / "cache", spec=TINY)
    two = extract_ped2(data, tmp_path / "cache", spec={**TINY, "frames_per_snippet": 2})
    assert (one.spec.frames_per_snippet, one.spec.crop_size, one.spec.resize) == (1, 32, 32)
    assert two.spec.frames_per_snippet == 2 and two.spec.digest() != one.spec.digest()
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == sorted(
        f"ped2-efficientnet_lite0-{features.spec.digest()}" for features in (one, two))
    assert len(one) == 28 and one.load("test_01").shape == (2, 1280)  # 20 frames: two snippets, the last padded
    assert not np.allclose(one.load("test_01"), two.load("test_01"))  # other frames fed: other features
    written = one.entry("train_05").path.stat().st_mtime_ns
    again = extract_ped2(data, tmp_path / "cache", spec=TINY)  # cached: read back, not extracted again
    assert again.entry("train_05").path.stat().st_mtime_ns == written
    assert np.array_equal(again.load("train_05"), one.load("train_05"))


def test_a_folder_without_the_28_clips_is_refused_by_count(tmp_path: Path) -> None:
    data = write_ped2_layout(tmp_path / "data", clips=(2, 1))
    with pytest.raises(AccuracyError, match="expected the 28 UCSD Ped2 clips .* found 3"):
        extract_ped2(data, tmp_path / "cache", spec=TINY)
