"""Frames scaled while decoding: every reader gives the same pixels at the delivered size, close to a reference
antialiased resize, and a huge source is never held at full size (issue 12, defect 3)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lanp_vad.pipeline.video import open_video
from lanp_vad.pipeline.video.reader import output_size
from lanp_vad.pipeline.video.snippets import SnippetPlan
from tests.videos import CODECS, moving_square, write_frame_folder, write_video

WIDTH, HEIGHT, FRAMES = 64, 48, 20


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scaling")
    return {codec: write_video(folder / f"clip{suffix}", codec=codec, num_frames=FRAMES)
            for codec, (suffix, _, _) in CODECS.items()}


def _frames(path: Path, backend: str = "auto", **limits: int) -> np.ndarray:
    with open_video(path, backend=backend, **limits) as reader:
        return reader.read_frames(np.arange(reader.info.num_frames)).astype(int)


def _reference(index: int, width: int, height: int) -> np.ndarray:
    """The source picture resized by PIL's antialiased bilinear filter (what torch's antialias=True matches)."""
    image = Image.fromarray(moving_square(index, HEIGHT, WIDTH))
    return np.asarray(image.resize((width, height), Image.BILINEAR), dtype=int)


@pytest.mark.parametrize("codec", list(CODECS))
def test_decoders_agree_at_the_scaled_size(videos: dict[str, Path], codec: str) -> None:
    for limits, size in (({"max_side": 32}, (32, 24)), ({"max_short_side": 30}, (40, 30))):
        pyav, decord = (_frames(videos[codec], backend, **limits) for backend in ("pyav", "decord"))
        assert pyav.shape == decord.shape == (FRAMES, size[1], size[0], 3)
        assert np.abs(pyav - decord).mean() < 2.0, limits
        for index in (0, FRAMES // 2, FRAMES - 1):  # near an antialiased resize of what was encoded
            assert np.abs(pyav[index] - _reference(index, *size)).mean() < 6.0, (limits, index)


def test_a_frame_folder_scales_like_the_decoders(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "frames", num_frames=6)
    frames = _frames(folder, max_short_side=24)
    assert frames.shape == (6, 24, 32, 3)
    for index in range(6):  # PNG is lossless: only the filter differs from the reference
        assert np.abs(frames[index] - _reference(index, 32, 24)).mean() < 2.0
    np.testing.assert_array_equal(_frames(folder), np.stack([moving_square(i, HEIGHT, WIDTH) for i in range(6)]))


def test_output_size_keeps_the_aspect_and_never_upscales() -> None:
    assert output_size(8000, 4096, None, 512) == (1000, 512)
    assert output_size(4096, 8000, 1000, None) == (512, 1000)
    assert output_size(1920, 1080, 1000, 512) == (910, 512)  # the tighter limit wins
    assert output_size(320, 240, 640, 512) == (320, 240)
    assert output_size(320, 240, None, None) == (320, 240)


def _decode_peak_growth(path: str, max_short_side: int | None, sender) -> None:  # noqa: ANN001 (a Connection)
    """Peak RSS growth (bytes) of decoding every snippet, after the reader is open (imports excluded)."""
    def status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) * 1024
        raise RuntimeError(field)

    with open_video(path, backend="pyav", max_short_side=max_short_side) as reader:
        before = status("VmRSS:")
        shapes = {frames.shape for _, frames in reader.iter_snippets(SnippetPlan.build(reader.info.num_frames))}
    sender.send((status("VmHWM:") - before, shapes))


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads peak RSS from /proc (Linux)")
def test_a_4k_source_is_never_held_at_full_size(tmp_path: Path) -> None:
    width, height = 3840, 2160
    path = write_video(tmp_path / "4k.mp4", num_frames=17, width=width, height=height,
                       options={"preset": "ultrafast", "crf": "35"})
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_decode_peak_growth, args=(str(path), 512, sender))
    process.start()
    growth, shapes = receiver.recv()
    process.join()
    assert shapes == {(16, 512, 910, 3)}
    snippet_at_full_size = 16 * width * height * 3  # 380 MiB; unbounded, decoding grows RSS by ~845 MiB
    assert growth < snippet_at_full_size / 2, f"decoding grew RSS by {growth / 2**20:.0f} MiB"
