"""The archive engine: bad videos recorded and skipped, hangs timed out, a killed run resumed, the CLI end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.pipeline.features.archive import extract_archive
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.features.featureset import MANIFEST_FILE, open_feature_set
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.video.worker import DECODER_NICENESS
from tests.conftest import REPO_ROOT
from tests.videos import write_random_bytes, write_video


def _manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / MANIFEST_FILE).read_text().splitlines()]


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
from lanp_vad.pipeline.features.archive import extract_archive
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.extractor import FeatureExtractor
if __name__ == "__main__":
    config = ExtractionConfig(device="cpu", frames_per_snippet=2, crop_size=32, batch_size=8)
    extract_archive([sys.argv[1]], sys.argv[2], FeatureExtractor(config), workers=1, progress=False, timeout_s=120)
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
    lanp = [sys.executable, "-m", "lanp_vad"]
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    fast = ["--frames-per-snippet", "1", "--crop-size", "32", "--device", "cpu", "--workers", "1", "--no-progress"]
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


def test_decoders_started_with_the_extractor_serve_the_archive_then_stop(tmp_path: Path) -> None:
    from tests.pipeline.features.fast import FAST

    video = write_video(tmp_path / "clip.mp4", num_frames=40, width=64, height=48)
    extractor = FeatureExtractor(FAST, archive_workers=1)
    pool = extractor._archive_pool
    assert pool is not None
    (worker,) = pool.workers  # spawned during construction, before any extraction
    assert worker.process.is_alive()
    niced = min(19, os.getpriority(os.PRIO_PROCESS, 0) + DECODER_NICENESS)  # a CPU extraction's decoders yield
    assert os.getpriority(os.PRIO_PROCESS, worker.process.pid) == niced
    report = extract_archive([video], tmp_path / "out", extractor, workers=1, progress=False)
    assert report.extracted == ["clip"] and not report.failed
    assert not worker.process.is_alive() and extractor.take_archive_pool() is None  # used once, then stopped
    expected = extractor.extract_video(video).features
    np.testing.assert_array_equal(open_feature_set(tmp_path / "out").load("clip"), expected)
