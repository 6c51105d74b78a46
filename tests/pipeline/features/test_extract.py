"""Extraction: one video (the scorer's path) and the archive engine (bad videos, hangs, a killed run resumed)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from models.errors import InternalError
from pipeline.features.extract import FeatureExtractor, extract_archive, snippet_frame_offsets
from pipeline.features.featureset import MANIFEST_FILE, open_feature_set
from pipeline.features.spec import FeatureSpec
from pipeline.video import DecodeTimeoutError, VideoError
from pipeline.video.worker import DecoderCrashedError
from tests.conftest import REPO_ROOT
from tests.videos import write_random_bytes, write_video

# Cheap settings: EfficientNet-Lite0 (real weights), 2 frames of each snippet at 32 px.
FAST = {"backbone": "efficientnet_lite0", "device": "cpu", "frames_per_snippet": 2, "crop_size": 32, "batch_size": 8}


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(**FAST)


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / MANIFEST_FILE).read_text().splitlines()]


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
    random = FeatureExtractor(**{**FAST, "weights": "random-init:3", "crops": 10})
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
    features = FeatureExtractor(**{**FAST, "crops": 10}).extract_video(video).features
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
    with FeatureExtractor(**FAST) as extractor:
        progress: list[tuple[int, int]] = []
        first = extractor.extract_video(video, timeout_s=60, progress=lambda *report: progress.append(report))
        workers = _worker_pids() - before
        second = extractor.extract_video(video, timeout_s=60)
        assert len(workers) == 1 and _worker_pids() - before == workers  # the same process decoded both
        assert np.array_equal(first.features, second.features) and first.features.shape == (3, 1280)
        assert progress[-1] == (3, 3)  # the worker's header gives the total
        probed, in_process = extractor.probe(video, timeout_s=30), extractor.probe(video)
        for info in (probed, in_process):  # the same header in the probe process, here and in the decode worker
            assert (info.num_frames, info.fps, info.width, info.height) == (37, 10.0, 64, 48)
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


def test_archive_with_bad_videos_extracts_the_rest_and_records_failures(
    tmp_path: Path, extractor: FeatureExtractor
) -> None:
    inputs = tmp_path / "videos"
    (inputs / "cam1").mkdir(parents=True)
    (inputs / "cam2").mkdir()
    write_video(inputs / "cam1" / "a.mp4", num_frames=40)
    write_video(inputs / "cam2" / "a.mp4", num_frames=17)  # same stem, other folder: ids stay apart
    write_random_bytes(inputs / "cam2" / "broken.mp4")
    fifo = tmp_path / "hang.mp4"
    os.mkfifo(fifo)
    out = tmp_path / "features"

    report = extract_archive([inputs, fifo], out, extractor=extractor, workers=1, timeout_s=3, progress=False)

    assert sorted(report.extracted) == ["cam1__a", "cam2__a"]
    assert set(report.failed) == {"cam2__broken", "hang"}
    records = {record["video_id"]: record for record in _manifest(out)}
    assert records["cam2__broken"]["status"] == "failed" and records["cam2__broken"]["error_kind"] == "not_video"
    assert records["hang"]["error_kind"] == "timeout"
    assert records["cam1__a"]["num_frames"] == 40 and records["cam1__a"]["num_snippets"] == 3
    assert records["cam1__a"]["fps"] == pytest.approx(10.0)
    features = open_feature_set(out)
    assert features.video_ids == ["cam1__a", "cam2__a"]
    assert features.spec == extractor.spec == FeatureSpec.load(out)
    expected = extractor.extract_video(inputs / "cam2" / "a.mp4").features
    np.testing.assert_allclose(features.load("cam2__a"), expected, rtol=2e-3, atol=1e-5)


_RUN_SCRIPT = """
import sys
from pipeline.features.extract import extract_archive
if __name__ == "__main__":
    extract_archive([sys.argv[1]], sys.argv[2], workers=1, progress=False, timeout_s=120, backbone="efficientnet_lite0",
                    device="cpu", frames_per_snippet=2, crop_size=32, batch_size=8)
"""


def test_killed_run_resumes_without_redoing_finished_videos(tmp_path: Path, extractor: FeatureExtractor) -> None:
    inputs = tmp_path / "videos"
    inputs.mkdir()
    for index in range(5):
        write_video(inputs / f"v{index}.mp4", num_frames=48 + 16 * index, width=96, height=64)
    out = tmp_path / "features"
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(_RUN_SCRIPT))
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, str(script), str(inputs), str(out)], env=environment,
                               start_new_session=True, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if (out / MANIFEST_FILE).exists() and any(r["status"] == "ok" for r in _manifest(out)):
                break
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # the run and its decoding workers, mid-way
        process.wait()
    finished = {record["video_id"] for record in _manifest(out) if record["status"] == "ok"}
    assert finished, "the first run finished no video before it was killed"
    if len(finished) == 5:
        pytest.skip("the first run finished everything before it could be killed")
    mtimes = {video_id: (out / f"{video_id}.npy").stat().st_mtime_ns for video_id in finished}

    report = extract_archive([inputs], out, extractor=extractor, workers=1, progress=False)

    assert sorted(report.skipped) == sorted(finished)
    assert sorted(report.extracted) == sorted({f"v{index}" for index in range(5)} - finished)
    assert {video_id: (out / f"{video_id}.npy").stat().st_mtime_ns for video_id in finished} == mtimes
    ok_lines = [record["video_id"] for record in _manifest(out) if record["status"] == "ok"]
    assert sorted(ok_lines) == [f"v{index}" for index in range(5)]  # each video written exactly once
    assert not list(out.glob(".*.tmp")), "a temporary file of the killed run was left behind"
    assert len(open_feature_set(out)) == 5


@pytest.mark.slow
def test_extract_then_train_then_evaluate_on_ped2(tmp_path: Path, shared_data: Path) -> None:
    """``lanp extract`` -> ``lanp train`` -> ``lanp evaluate`` on the real Ped2 clips (1 frame a snippet, 32 px)."""
    videos = shared_data / "ucsd-ped2" / "videos"
    lanp = [sys.executable, "-m", "pipeline"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    fast = ["--frames-per-snippet", "1", "--size", "32", "--device", "cpu", "--workers", "1", "--no-progress"]
    for split in ("train", "test"):
        done = subprocess.run([*lanp, "extract", str(videos / split), "--out", str(tmp_path / split), *fast],
                              env=environment, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "0 failed" in done.stderr
    assert len(open_feature_set(tmp_path / "train")) == 16 and len(open_feature_set(tmp_path / "test")) == 12
    trained = subprocess.run(
        [*lanp, "train", "--features", str(tmp_path / "train"), "--out", str(tmp_path / "model"), "--device", "cpu",
         "--set", "train.epochs=3", "--set", "train.batch_size=4", "--set", "pseudo.confident_normal_ratio=0.25",
         "--no-progress"],
        env=environment, capture_output=True, text=True, timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    evaluated = subprocess.run(
        [*lanp, "evaluate", "--model", str(tmp_path / "model"), "--features", str(tmp_path / "test"),
         "--gt", str(shared_data / "ucsd-ped2" / "ped2.mat"), "--device", "cpu", "--json"],
        env=environment, capture_output=True, text=True, timeout=600,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    metrics = json.loads(evaluated.stdout)
    auc = metrics.get("auc_roc", metrics.get("metrics", {}).get("auc_roc"))
    assert auc is not None and 0.0 <= auc <= 1.0
