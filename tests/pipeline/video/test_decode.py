"""Decoding real files: tiny PyAV-written videos in four codecs, UCSD Ped2 and the CCTV clips, and bad inputs."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.pipeline.video import (
    CorruptVideoError,
    EmptyFileError,
    NotAVideoError,
    NoVideoStreamError,
    ResolutionTooLargeError,
    UnsupportedCodecError,
    VideoError,
    open_video,
    sniff_container,
)
from lanp_vad.pipeline.video.snippets import SnippetPlan
from tests.videos import (
    CODECS,
    moving_square,
    patch_avi_codec,
    write_audio_only,
    write_dropped_frames_avi,
    write_frame_folder,
    write_random_bytes,
    write_size_switch,
    write_text,
    write_truncated,
    write_video,
    write_zero_byte,
)

BACKENDS = ("decord", "pyav")
NUM_FRAMES, WIDTH, HEIGHT, FPS = 37, 64, 48, 10


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One tiny video per codec (37 frames, 64x48, 10 fps)."""
    folder = tmp_path_factory.mktemp("videos")
    return {
        codec: write_video(folder / f"clip_{codec}{suffix}", codec=codec, num_frames=NUM_FRAMES, fps=FPS)
        for codec, (suffix, _, _) in CODECS.items()
    }


def _all_frames(path: Path | io.BytesIO, backend: str, **kwargs: object) -> np.ndarray:
    with open_video(path, backend=backend, **kwargs) as reader:
        return reader.read_frames(np.arange(reader.info.num_frames))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("codec", list(CODECS))
def test_metadata_from_the_container(videos: dict[str, Path], codec: str, backend: str) -> None:
    with open_video(videos[codec], backend=backend) as reader:
        info = reader.info
    assert (info.num_frames, info.fps, info.width, info.height) == (NUM_FRAMES, FPS, WIDTH, HEIGHT)
    assert info.backend == backend and info.codec == codec
    assert info.duration_s == pytest.approx(NUM_FRAMES / FPS)
    np.testing.assert_allclose(info.timestamps_s, np.arange(NUM_FRAMES) / FPS, atol=1e-3)


@pytest.mark.parametrize("codec", list(CODECS))
def test_backends_agree_and_frames_come_in_order(videos: dict[str, Path], codec: str) -> None:
    decord_frames, pyav_frames = (_all_frames(videos[codec], backend) for backend in BACKENDS)
    assert decord_frames.shape == pyav_frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    assert np.abs(decord_frames.astype(int) - pyav_frames.astype(int)).mean() < 2.0
    originals = np.stack([moving_square(i, HEIGHT, WIDTH) for i in range(NUM_FRAMES)]).astype(int)
    for index, frame in enumerate(pyav_frames.astype(int)):
        errors = np.abs(originals - frame).mean(axis=(1, 2, 3))
        assert errors.argmin() == index, f"decoded frame {index} looks like source frame {errors.argmin()}"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("length", "stride", "batch"), [(16, 16, 1), (16, 16, 3), (16, 8, 2), (8, 12, 1)])
def test_snippets_equal_whole_video_decode(
    videos: dict[str, Path], backend: str, length: int, stride: int, batch: int
) -> None:
    whole = _all_frames(videos["h264"], backend)
    plan = SnippetPlan.build(NUM_FRAMES, length=length, stride=stride)
    with open_video(videos["h264"], backend=backend) as reader:
        seen = []
        for index, frames in reader.iter_snippets(plan, batch=batch):
            np.testing.assert_array_equal(frames, whole[plan.frame_indices(index)])
            seen.append(index)
            if backend == "pyav":  # the sequential decoder keeps only the frames of the snippets in hand
                assert len(reader._kept) <= batch * length
    assert seen == list(range(plan.num_snippets))


@pytest.mark.parametrize("backend", BACKENDS)
def test_file_object_input(videos: dict[str, Path], backend: str) -> None:
    expected = _all_frames(videos["mpeg4"], backend)
    np.testing.assert_array_equal(_all_frames(io.BytesIO(videos["mpeg4"].read_bytes()), backend), expected)
    with videos["mpeg4"].open("rb") as file:
        np.testing.assert_array_equal(_all_frames(file, backend), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_max_side_downscales_preserving_aspect(videos: dict[str, Path], backend: str) -> None:
    with open_video(videos["vp9"], backend=backend, max_side=32) as reader:
        assert (reader.info.width, reader.info.height) == (32, 24)
        assert (reader.info.source_width, reader.info.source_height) == (WIDTH, HEIGHT)
        _, frames = next(reader.iter_snippets(SnippetPlan.build(reader.info.num_frames)))
    assert frames.shape == (16, 24, 32, 3)


@pytest.mark.parametrize("backend", BACKENDS)
def test_target_fps_resamples_by_timestamp(videos: dict[str, Path], backend: str) -> None:
    whole = _all_frames(videos["mjpeg"], backend)
    with open_video(videos["mjpeg"], backend=backend, target_fps=5) as reader:
        assert (reader.info.num_frames, reader.info.fps, reader.info.source_fps) == (19, 5.0, FPS)
        assert reader.info.source_indices.tolist() == list(range(0, NUM_FRAMES, 2))
        np.testing.assert_array_equal(reader.read_frames(np.arange(19)), whole[::2])
    with open_video(videos["mjpeg"], backend=backend, target_fps=20) as reader:
        assert reader.info.num_frames == 2 * NUM_FRAMES
        assert reader.info.source_indices.tolist() == np.repeat(np.arange(NUM_FRAMES), 2).tolist()


def test_frame_folder_in_natural_order(tmp_path: Path) -> None:
    folder = write_frame_folder(tmp_path / "frames", num_frames=12)
    with open_video(folder) as reader:
        assert (reader.info.num_frames, reader.info.fps, reader.info.backend) == (12, 25.0, "images")
        frames = reader.read_frames(np.arange(12))
    for index in range(12):  # PNG is lossless: frame i is exactly the image written as "{i+1}.png"
        np.testing.assert_array_equal(frames[index], moving_square(index, HEIGHT, WIDTH))
    with open_video(folder, folder_fps=10, max_side=32) as reader:
        assert (reader.info.fps, reader.info.duration_s, reader.info.width) == (10.0, 1.2, 32)


def test_frame_folder_errors_name_the_file(tmp_path: Path) -> None:
    from PIL import Image

    with pytest.raises(NotAVideoError, match="no frame images"):
        open_video(tmp_path)
    folder = write_frame_folder(tmp_path / "frames", num_frames=3)
    Image.new("RGB", (10, 10)).save(folder / "4.png")
    with open_video(folder) as reader, pytest.raises(CorruptVideoError, match="4.png"):
        reader.read_frames([3])


def test_ucsd_ped2_frame_counts(shared_data: Path) -> None:
    """The data README's totals: train 2,550 frames in 16 clips, test 2,010 in 12, 360x240 at 10 fps."""
    for split, clips, total in (("train", 16, 2550), ("test", 12, 2010)):
        paths = sorted((shared_data / "ucsd-ped2/videos" / split).glob("*.mp4"))
        assert len(paths) == clips
        counts = []
        for path in paths:
            with open_video(path) as reader:
                assert (reader.info.fps, reader.info.width, reader.info.height) == (10.0, 360, 240)
                counts.append(reader.info.num_frames)
        assert sum(counts) == total
    with open_video(paths[0], backend="pyav") as reader:
        assert reader.info.num_frames == counts[0]


def test_real_clips_agree_across_backends(shared_data: Path) -> None:
    paths = sorted((shared_data / "cctv-clips").glob("*.mp4"))
    assert len(paths) == 7
    for path in paths:
        infos = {}
        for backend in BACKENDS:
            with open_video(path, backend=backend) as reader:
                infos[backend] = reader.info
                plan = SnippetPlan.build(reader.info.num_frames)
                first = next(reader.iter_snippets(plan))[1].astype(int)
                if backend == "decord":
                    reference = first
        assert infos["decord"].num_frames == infos["pyav"].num_frames >= 50
        assert infos["decord"].fps == infos["pyav"].fps == 30.0
        assert (infos["pyav"].width, infos["pyav"].height) == (320, 240)
        assert np.abs(first - reference).mean() < 2.0
    ped2 = shared_data / "ucsd-ped2/videos/test/01.mp4"
    decord_frames, pyav_frames = (_all_frames(ped2, backend)[:32] for backend in BACKENDS)
    assert np.abs(decord_frames.astype(int) - pyav_frames.astype(int)).mean() < 2.0


def _typed_error(path: Path, error: type[VideoError], kind: str, **kwargs: object) -> None:
    for backend in ("auto", *BACKENDS):
        with pytest.raises(error) as raised, open_video(path, backend=backend, **kwargs) as reader:
            for _ in reader.iter_snippets(SnippetPlan.build(reader.info.num_frames)):
                pass
        assert raised.value.kind == kind and str(path) in str(raised.value), str(raised.value)


def test_bad_inputs_get_typed_errors(tmp_path: Path, videos: dict[str, Path]) -> None:
    _typed_error(write_zero_byte(tmp_path / "empty.mp4"), EmptyFileError, "empty")
    _typed_error(write_random_bytes(tmp_path / "random.mp4"), NotAVideoError, "not_video")
    _typed_error(write_text(tmp_path / "notes.mp4"), NotAVideoError, "not_video")
    _typed_error(write_audio_only(tmp_path / "tone.wav"), NoVideoStreamError, "no_video_stream")
    unknown = patch_avi_codec(Path(shutil.copy(videos["mpeg4"], tmp_path / "unknown.avi")))
    _typed_error(unknown, UnsupportedCodecError, "unsupported_codec")
    _typed_error(videos["h264"], ResolutionTooLargeError, "too_large", max_pixels=WIDTH * HEIGHT - 1)
    wide = write_video(tmp_path / "wide.avi", codec="mjpeg", width=8200, height=16, num_frames=2)
    _typed_error(wide, ResolutionTooLargeError, "too_large")
    with pytest.raises(EmptyFileError, match="uploaded stream is empty"):
        open_video(io.BytesIO(b""))


def test_truncated_and_corrupt_files_fail(tmp_path: Path) -> None:
    """A file that cannot deliver the frames its header announces fails whole; frames are never dropped."""
    moov_last = write_video(tmp_path / "moov_last.mp4", num_frames=60)
    _typed_error(write_truncated(tmp_path / "cut.mp4", moov_last), CorruptVideoError, "corrupt")
    faststart = write_video(tmp_path / "fast.mp4", num_frames=60, container_options={"movflags": "faststart"})
    _typed_error(write_truncated(tmp_path / "cut_fast.mp4", faststart), CorruptVideoError, "corrupt")
    webm = write_video(tmp_path / "clip.webm", codec="vp9", num_frames=40)
    _typed_error(write_truncated(tmp_path / "cut.webm", webm, keep_fraction=0.6), CorruptVideoError, "corrupt")
    data = bytearray(faststart.read_bytes())  # same length, garbage in the middle of the frame data
    quarter = len(data) // 4
    data[2 * quarter : 3 * quarter] = np.random.default_rng(0).integers(0, 256, quarter, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    _typed_error(damaged, CorruptVideoError, "corrupt")


DROPPED = (0, 1, 2, 3, 10, 11, 12, 20, 21, 22, 23, 24, 30, 31, 39)
"""Timeline positions of the frames a recorder kept: 15 of 40 stored, gaps inside, the last one kept."""


@pytest.mark.parametrize("backend", ("auto", *BACKENDS))
def test_dropped_frames_are_no_damage(tmp_path: Path, backend: str) -> None:
    """An AVI whose header counts 40 frames but that stores 15, with timestamp gaps up to its end, is accepted:
    the decoded frames and their timestamps are trusted (issue 12, defect 2: OpenCV's tree.avi)."""
    path = write_dropped_frames_avi(tmp_path / "dropped.avi", stored=DROPPED)
    with open_video(path, backend=backend) as reader:
        info = reader.info
        frames = reader.read_frames(np.arange(info.num_frames))
        resampled = open_video(path, backend=backend, target_fps=FPS)
    assert (info.num_frames, info.fps) == (len(DROPPED), FPS)
    np.testing.assert_allclose(info.timestamps_s, np.asarray(DROPPED) / FPS, atol=1e-3)
    assert info.duration_s == pytest.approx(4.0)  # the gaps are time: the last frame is on screen at 3.9 s
    for index, frame in enumerate(frames.astype(int)):
        assert np.abs(frame - moving_square(index, HEIGHT, WIDTH)).mean() < 12, f"stored frame {index}"
    with resampled:  # at the nominal rate, each dropped frame shows the frame on screen before it
        on_screen = np.searchsorted(DROPPED, np.arange(40), side="right") - 1
        assert resampled.info.source_indices.tolist() == on_screen.tolist()


def test_a_dropped_frames_file_cut_short_is_still_truncated(tmp_path: Path) -> None:
    """Trusting gaps does not hide damage: the same file cut short is still refused."""
    source = write_dropped_frames_avi(tmp_path / "dropped.avi", stored=DROPPED)
    _typed_error(write_truncated(tmp_path / "cut.avi", source, keep_fraction=0.6), CorruptVideoError, "corrupt")


def test_sniff_container(tmp_path: Path, videos: dict[str, Path]) -> None:
    expected = {"h264": "mp4", "mpeg4": "avi", "vp9": "matroska", "mjpeg": "avi"}
    for codec, path in videos.items():
        assert sniff_container(path.read_bytes()[:512]) == expected[codec]
    assert sniff_container(write_audio_only(tmp_path / "a.wav").read_bytes()[:64]) == "wav"
    assert sniff_container(write_random_bytes(tmp_path / "r.bin").read_bytes()[:512]) is None
    assert sniff_container(write_text(tmp_path / "t.txt").read_bytes()[:512]) is None
    ts = write_video(tmp_path / "clip.ts", codec="mpeg4", num_frames=3)
    assert sniff_container(ts.read_bytes()[:512]) == "mpeg-ts"


def test_auto_falls_back_to_pyav_where_decord_cannot_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ts = write_video(tmp_path / "clip.ts", codec="mpeg4", num_frames=NUM_FRAMES)  # decord: "broken metadata"
    with open_video(ts) as reader:
        assert (reader.info.backend, reader.info.num_frames, reader.info.fps) == ("pyav", NUM_FRAMES, FPS)
        frames = reader.read_frames(np.arange(NUM_FRAMES))
    assert "falling back to PyAV" in caplog.text and str(ts) in caplog.text
    assert frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    with pytest.raises(CorruptVideoError, match="decord cannot read"):
        open_video(ts, backend="decord")


def test_invalid_arguments(videos: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="unknown decoding backend"):
        open_video(videos["h264"], backend="opencv")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        open_video(videos["h264"].with_name("missing.mp4"))
    with open_video(videos["h264"]) as reader, pytest.raises(ValueError, match="plan is for 10 frames"):
        next(reader.iter_snippets(SnippetPlan.build(10)))


@pytest.mark.parametrize("later", [(1920, 1080), (16000, 64)])
def test_a_frame_larger_than_its_header_is_refused(tmp_path: Path, later: tuple[int, int]) -> None:
    """The header says 64x48 and the limits are checked against it; frames that grow later are refused where PyAV
    decodes them (decord scales every frame to the header's size inside its decoder)."""
    path = write_size_switch(tmp_path / "switch.ts", later=later)
    with pytest.raises(ResolutionTooLargeError, match=f"frame 16 is {later[0]}x{later[1]}") as raised, \
            open_video(path, backend="pyav") as reader:
        for _ in reader.iter_snippets(SnippetPlan.build(reader.info.num_frames)):
            pass
    assert raised.value.kind == "too_large"


def test_a_live_frame_beyond_the_size_limits_ends_the_session(tmp_path: Path) -> None:
    from lanp_vad.pipeline.live.source import SourceConfig, open_live

    path = write_size_switch(tmp_path / "switch.ts", later=(16000, 64))
    connection = open_live(str(path), SourceConfig(read_timeout_s=1.0))
    try:
        with pytest.raises(VideoError, match="16000x64") as raised:
            for _ in connection.frames():
                pass
    finally:
        connection.close()
    assert raised.value.kind == "too_large"
