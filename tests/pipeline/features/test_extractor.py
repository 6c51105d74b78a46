"""One video through the extractor: in process and in its kept, killable decode worker (hangs, crashes)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.models.errors import InternalError
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.video import DecodeTimeoutError, VideoError
from lanp_vad.pipeline.video.worker import DecoderCrashedError, snippet_frame_offsets
from tests.pipeline.features.fast import FAST
from tests.videos import write_video


def test_snippet_frame_offsets_spread_evenly() -> None:
    assert snippet_frame_offsets(16, 16).tolist() == list(range(16))
    assert snippet_frame_offsets(16, 2).tolist() == [4, 12]
    assert snippet_frame_offsets(16, 1).tolist() == [8]
    with pytest.raises(ValueError, match="1..16"):
        snippet_frame_offsets(16, 17)


def test_spec_describes_every_choice(extractor: FeatureExtractor) -> None:
    spec = extractor.spec
    assert (spec.backbone, spec.dim, spec.frames_per_snippet, spec.crop_size, spec.crops) == (
        "efficientnet_lite0", 1280, 2, 32, 1)
    assert spec.resize == round(32 * 256 / 224) and spec.snippet_length == spec.stride == 16 and spec.pad_last
    assert spec.weights.startswith("efficientnet-lite0-57934424.pth:")
    assert spec.mean == (0.485, 0.456, 0.406)
    random = FeatureExtractor(FAST.model_copy(update={"weights": "random-init:3", "crops": 10}))
    assert random.spec.weights == "random-init:3" and random.spec.crops == 10
    assert random.spec.digest() != spec.digest()


def test_same_video_twice_gives_identical_features(tmp_path: Path, extractor: FeatureExtractor) -> None:
    video = write_video(tmp_path / "clip.mp4", num_frames=37, width=64, height=48)
    progress: list[tuple[int, int]] = []
    first = extractor.extract_video(video, progress=lambda done, total: progress.append((done, total)))
    second = extractor.extract_video(video)
    assert first.features.shape == (3, 1280) and first.features.dtype == np.float32  # ceil(37 / 16) snippets
    assert np.array_equal(first.features, second.features)
    assert first.plan.num_snippets == 3 and first.info.num_frames == 37
    assert progress[-1] == (3, 3)
    assert not np.allclose(first.features[0], first.features[2]), "different snippets, same features"


def test_ten_crop_features_keep_the_crop_axis(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", codec="mpeg4", num_frames=20, width=64, height=48)
    features = FeatureExtractor(FAST.model_copy(update={"crops": 10})).extract_video(video).features
    assert features.shape == (2, 10, 1280)
    assert not np.allclose(features[:, 0], features[:, 5])  # a crop and its mirror differ


def test_timeout_path_matches_in_process_extraction(tmp_path: Path, extractor: FeatureExtractor) -> None:
    video = write_video(tmp_path / "clip.webm", codec="vp9", num_frames=33, width=64, height=48)
    in_process = extractor.extract_video(video).features
    in_worker = extractor.extract_video(video, timeout_s=60).features
    # the engine gives the decoders a core, so the forward pass runs on fewer threads: same values up to rounding
    np.testing.assert_allclose(in_worker, in_process, rtol=2e-3, atol=1e-5)


def _worker_pids() -> set[int]:
    return {child.pid for child in multiprocessing.active_children() if child.pid is not None}


def test_the_decode_worker_is_started_once_and_kept(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", num_frames=37, width=64, height=48)
    before = _worker_pids()
    with FeatureExtractor(FAST) as extractor:
        progress: list[tuple[int, int]] = []
        first = extractor.extract_video(video, timeout_s=60, progress=lambda *report: progress.append(report))
        workers = _worker_pids() - before
        second = extractor.extract_video(video, timeout_s=60)
        assert len(workers) == 1 and _worker_pids() - before == workers  # the same process decoded both
        assert np.array_equal(first.features, second.features) and first.features.shape == (3, 1280)
        assert progress[-1] == (3, 3)  # the worker's header gives the total
        probed, in_process = extractor.probe(video, timeout_s=30), extractor.probe(video)
        for info in (probed, in_process):  # the same header in the probe process, here and in the decode worker
            assert (info.num_frames, info.fps, info.source_width, info.source_height) == (37, 10.0, 64, 48)
            assert info.height == extractor.spec.resize  # delivered at the resize
            np.testing.assert_array_equal(info.timestamps_s, first.info.timestamps_s)
        assert len(_worker_pids() - before) == 2  # the probe process: separate, so it never waits behind a decode
    assert _worker_pids() - before == set(), "close() must stop the decode and probe processes"


def test_hanging_decode_times_out_and_the_next_video_gets_a_fresh_worker(
    tmp_path: Path, extractor: FeatureExtractor
) -> None:
    fifo = tmp_path / "stuck.mp4"
    os.mkfifo(fifo)  # opening it blocks forever: no writer ever comes
    video = write_video(tmp_path / "clip.mp4", num_frames=20, width=64, height=48)
    expected = extractor.extract_video(video, timeout_s=60).features
    hung = _worker_pids()
    started = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="no progress for 2 s"):
        extractor.extract_video(fifo, timeout_s=2)
    with pytest.raises(DecodeTimeoutError, match="no progress for 2 s"):
        extractor.probe(fifo, timeout_s=2)
    assert time.monotonic() - started < 60
    np.testing.assert_array_equal(extractor.extract_video(video, timeout_s=60).features, expected)
    assert not hung & _worker_pids(), "the timed-out worker was not replaced"
    assert extractor.probe(video, timeout_s=30).num_frames == 20


def test_a_worker_that_dies_mid_video_is_a_typed_error_and_is_replaced(
    tmp_path: Path, extractor: FeatureExtractor
) -> None:
    fifo = tmp_path / "crash.mp4"
    os.mkfifo(fifo)
    video = write_video(tmp_path / "clip.mp4", num_frames=20, width=64, height=48)
    extractor.extract_video(video, timeout_s=60)  # the decode worker is running
    before = _worker_pids()

    def crash_the_worker() -> None:  # a decoder crash, as seen from the caller: the process vanishes mid-video
        time.sleep(1.0)
        for pid in before:
            os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=crash_the_worker)
    killer.start()
    with pytest.raises(DecoderCrashedError, match="worker died") as error:
        extractor.extract_video(fifo, timeout_s=60)
    killer.join()
    # the worker's death is ours, not the video's: an internal error (HTTP 500), never a "corrupt" video (422)
    assert error.value.kind == "worker_crashed" and isinstance(error.value, InternalError)
    assert not isinstance(error.value, VideoError)
    assert extractor.extract_video(video, timeout_s=60).features.shape == (2, 1280)


def test_frames_are_scaled_once_while_decoding_to_the_resize(tmp_path: Path, extractor: FeatureExtractor) -> None:
    """The default decode bound is the transform's short side: a large source reaches the transform already at the
    resize (no full-size frame is handed over or converted to float), and a spec saved with another bound keeps
    decoding at that bound."""
    resize = extractor.spec.resize
    assert extractor.spec.decode_short_side == extractor.decode.max_short_side == resize
    video = write_video(tmp_path / "large.mp4", num_frames=16, width=8 * resize, height=4 * resize)
    extracted = extractor.extract_video(video, timeout_s=60)
    assert (extracted.info.width, extracted.info.height) == (2 * resize, resize)
    with extractor.decode.open_reader(video) as reader:
        assert reader.read_frames([0]).shape == (1, resize, 2 * resize, 3)
    bounded = extractor.spec.model_copy(update={"decode_short_side": 1080})
    with FeatureExtractor.from_spec(bounded) as older:
        assert older.spec == bounded and older.decode.max_short_side == 1080
        assert older.extract_video(video).info.height == 4 * resize
