"""The batch job on real clips: outputs consistent with the per-video JSON, failures recorded, kill + resume.

One small random-init model (x3d_xs at 64 px, 2 frames a snippet: the contract under test is the batch job, not
accuracy) scores a folder of 2 Ped2 clips, the 7 CCTV clips, a truncated mp4 and a text file named .mp4.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.jobs.batch import BatchError, run_batch
from pipeline.jobs.config import BatchConfig
from pipeline.video.inputs import VideoInput, expand_inputs
from tests.conftest import REPO_ROOT
from tests.pipeline.jobs.batch_fixtures import BAD_IDS, PED2_CLIPS


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


def _documents(out: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((out / "videos").glob("*.json"))}


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_good_videos_scored_bad_ones_recorded_and_tables_match_the_json(archive: Path, reference: Path) -> None:
    import pyarrow.parquet as pq

    documents = _documents(reference)
    good = sorted(video.video_id for video in expand_inputs([archive]) if video.video_id not in BAD_IDS)
    assert sorted(documents) == good and len(good) == len(PED2_CLIPS) + 7

    summary = {row["video_id"]: row for row in _csv(reference / "summary.csv")}
    assert list(summary) == sorted(good + BAD_IDS)
    errors = {record["video_id"]: record for record in _manifest(reference) if record["status"] == "failed"}
    for video_id in BAD_IDS:
        assert summary[video_id]["status"] == "failed"
        assert errors[video_id]["error_kind"] in ("corrupt", "not_video", "invalid")
        assert summary[video_id]["error"] == f"{errors[video_id]['error_kind']}: {errors[video_id]['error']}"
        assert not (reference / "videos" / f"{video_id}.json").exists()

    segments = _csv(reference / "segments.csv")
    snippets = pq.read_table(reference / "snippets.parquet").to_pydict()
    assert len(snippets["score"]) == sum(len(doc["snippet_scores"]) for doc in documents.values())
    assert sum(len(doc["segments"]) for doc in documents.values()) > 0, "the threshold should give some events"
    for video_id, doc in documents.items():
        row = summary[video_id]
        scores = doc["snippet_scores"]
        assert row["status"] == "ok" and row["error"] == ""
        assert int(row["snippets"]) == len(scores) == -(-doc["num_frames"] // 16)
        assert float(row["max_score"]) == max(scores)
        assert int(row["num_frames"]) == doc["num_frames"] and float(row["fps"]) == doc["fps"]
        assert int(row["num_segments"]) == len(doc["segments"])
        own_segments = [s for s in segments if s["video_id"] == video_id]
        assert [(int(s["start_frame"]), int(s["end_frame"]), float(s["peak"])) for s in own_segments] == [
            (s["start_frame"], s["end_frame"], s["peak"]) for s in doc["segments"]
        ]
        rows = [i for i, name in enumerate(snippets["video_id"]) if name == video_id]
        assert [snippets["score"][i] for i in rows] == scores
        assert [snippets["snippet"][i] for i in rows] == list(range(len(scores)))
        assert snippets["start_frame"][rows[-1]] == 16 * (len(scores) - 1)
        assert snippets["end_frame"][rows[-1]] == doc["num_frames"]
        assert snippets["start_s"][rows[1]] == pytest.approx(doc["timestamps"][16])
        assert {snippets["spec_hash"][i] for i in rows} == {doc["feature_spec"]["hash"]}
        assert (reference / "plots" / f"{video_id}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _score_command(archive: Path, model_dir: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "score", str(archive), "--model", str(model_dir), "--out", str(out),
            "--workers", "2", "--device", "cpu", "--no-progress"]


def test_killed_run_resumes_without_rescoring_or_losing_a_video(
    archive: Path, model_dir: Path, reference: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    total = len(expand_inputs([archive]))
    process = subprocess.Popen(_score_command(archive, model_dir, out), cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        manifest = out / "manifest.jsonl"
        if manifest.exists() and sum('"status": "ok"' in line for line in manifest.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read().decode()}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first = _manifest(out)
    finished_first = {r["video_id"] for r in first if r["status"] in ("ok", "failed")}
    assert 3 <= len(finished_first) < total

    resumed = subprocess.run(_score_command(archive, model_dir, out), cwd=REPO_ROOT, capture_output=True, timeout=300)
    assert resumed.returncode == 1, resumed.stderr.decode()  # two bad files: exit status 1, the rest scored

    records = _manifest(out)
    second_run = {r["run"] for r in records[len(first):]}
    assert len(second_run) == 1
    started_again = {r["video_id"] for r in records[len(first):] if r["status"] == "started"}
    assert not started_again & finished_first, "a video finished before the kill was processed again"
    for video_id in {r["video_id"] for r in records}:
        finals = [r for r in records if r["video_id"] == video_id and r["status"] in ("ok", "failed")]
        assert len(finals) == 1, f"{video_id} finished {len(finals)} times"
    assert len({r["video_id"] for r in records if r["status"] in ("ok", "failed")}) == total

    assert _documents(out) == _documents(reference)
    for table in ("summary.csv", "segments.csv"):
        assert (out / table).read_bytes() == (reference / table).read_bytes()
    assert pq.read_table(out / "snippets.parquet").equals(pq.read_table(reference / "snippets.parquet"))

    again = run_batch(expand_inputs([archive]), model_dir, out, workers=1, retry_failed=True, device="cpu",
                      progress=False)
    assert again.skipped == total - 2 and again.failed == BAD_IDS
    retried = _manifest(out)[len(records):]
    assert sorted(r["video_id"] for r in retried if r["status"] == "started") == BAD_IDS


def test_a_hanging_video_is_killed_recorded_and_the_run_goes_on(
    model_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "stuck.mp4"
    os.mkfifo(fifo)  # opening it for reading blocks forever: a decoder that hangs in native code
    videos = [VideoInput("stuck", fifo), VideoInput("clip", shared_data / "cctv-clips" / "Normal__Dava1_2.mp4")]
    start = time.monotonic()
    report = run_batch(videos, model_dir, tmp_path / "out", workers=1, timeout_s=5.0, device="cpu", progress=False)
    assert report.failed == ["stuck"] and report.scored == 1
    record = next(r for r in _manifest(tmp_path / "out") if r["status"] == "failed")
    assert record["error_kind"] == "timeout" and "killed" in record["error"]
    assert time.monotonic() - start < 120  # killed, not waited for


def test_output_folder_of_another_model_is_refused(model_dir: Path, reference: Path, archive: Path,
                                                   tmp_path: Path) -> None:
    other = tmp_path / "other-model"
    shutil.copytree(model_dir, other)
    metadata = json.loads((other / "metadata.json").read_text())
    (other / "metadata.json").write_text(json.dumps({**metadata, "threshold": 0.9}))
    before = (reference / "manifest.jsonl").read_bytes()
    with pytest.raises(BatchError, match="another --out"):
        run_batch(expand_inputs([archive]), other, reference, BatchConfig(device="cpu"), progress=False)
    assert (reference / "manifest.jsonl").read_bytes() == before


def test_a_rerun_with_other_segment_settings_resegments_without_scoring_again(
    model_dir: Path, reference: Path, archive: Path, tmp_path: Path
) -> None:
    from pipeline.scoring.config import ScoringConfig
    from pipeline.scoring.result import resegment

    out = tmp_path / "out"
    shutil.copytree(reference, out)
    before = _documents(out)
    config = ScoringConfig(threshold=0.2, smooth_s=0.0, min_duration_s=0.0, merge_gap_s=0.0)
    report = run_batch(expand_inputs([archive]), model_dir, out, BatchConfig(device="cpu", scoring=config),
                       progress=False)
    assert report.scored == 0 and _manifest(out) == _manifest(reference)  # nothing decoded or scored again
    after = _documents(out)
    assert after == {video_id: resegment(doc, config) for video_id, doc in before.items()}
    assert all(doc["threshold"] == 0.2 for doc in after.values())
    rows = _csv(out / "segments.csv")
    assert len(rows) == sum(len(doc["segments"]) for doc in after.values())
    assert any(after[video_id]["segments"] != before[video_id]["segments"] for video_id in before)

    from pipeline.cli import main

    assert main(["segments", str(out), "--threshold", "0.99", "--merge-gap", "5"]) == 0  # the CLI over the same
    strict = _documents(out)
    assert all(doc["threshold"] == 0.99 and doc["segment_config"]["merge_gap_s"] == 5 for doc in strict.values())
    assert len(_csv(out / "segments.csv")) == sum(len(doc["segments"]) for doc in strict.values())
    assert json.loads((out / "run.json").read_text())["scoring"]["threshold"] == 0.99
    assert _manifest(out) == _manifest(reference)


def test_cli_usage_errors_exit_2(archive: Path, model_dir: Path, tmp_path: Path, capsys) -> None:
    from pipeline.cli import main

    assert main(["score", str(tmp_path / "missing.mp4"), "--model", str(model_dir)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["score", str(archive / "cctv"), "--model", str(model_dir)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["score", str(archive / "cctv"), "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a model directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        main(["score", str(archive / "cctv"), "--model", str(model_dir), "--threshold", "1.5"])
    assert raised.value.code == 2


def test_single_video_prints_the_score_document(archive: Path, model_dir: Path, reference: Path, capsys) -> None:
    from pipeline.cli import main

    assert main(["score", str(archive / "cctv" / "Dozdi__Dozdi1_0.mp4"), "--model", str(model_dir)]) == 0
    printed = json.loads(capsys.readouterr().out)
    stored = json.loads((reference / "videos" / "cctv__Dozdi__Dozdi1_0.json").read_text())
    assert printed.keys() == stored.keys() and printed["num_frames"] == stored["num_frames"]
    np.testing.assert_allclose(printed["snippet_scores"], stored["snippet_scores"], rtol=0, atol=1e-6)
    assert main(["score", str(archive / "bad" / "notes.mp4"), "--model", str(model_dir), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "notes.mp4" in captured.err and not captured.out
