"""The batch job on real (PyAV-written) clips: outputs consistent with the per-video JSON, failures recorded with
their kinds, kill + resume, hung and crashed workers, workers that die with their parent, named non-video files.

One small random-init model (tests/pipeline/jobs/conftest.py) scores a folder of six clips in four codecs, a
truncated mp4 and a text file named .mp4. Needs no ``../shared`` except the one Ped2 test at the end.
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

from lanp_vad.models.errors import ErrorKind
from lanp_vad.pipeline.jobs.batch import run_batch
from lanp_vad.pipeline.jobs.config import BatchConfig, BatchError
from lanp_vad.pipeline.video.inputs import VideoInput, expand_inputs
from tests.conftest import REPO_ROOT
from tests.pipeline.jobs.conftest import BAD_IDS, GOOD_IDS
from tests.videos import write_audio_only, write_video

CPU = BatchConfig(device="cpu")


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as stream:
        return list(csv.DictReader(stream))


def _documents(out: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((out / "videos").glob("*.json"))}


def _manifest(out: Path) -> list[dict]:
    manifest = out / "manifest.jsonl"
    return [json.loads(line) for line in manifest.read_text().splitlines()] if manifest.exists() else []


def _children(pid: int) -> set[int]:
    """Direct children of ``pid`` (Linux /proc)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Running, not a zombie (a killed orphan is reaped by init; our own children we reap ourselves)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for_record(out: Path, process: subprocess.Popen, video_id: str, status: str, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        if any(r["video_id"] == video_id and r["status"] == status for r in _manifest(out)):
            return
        time.sleep(0.05)
    stderr = process.stderr.read().decode() if process.stderr and process.poll() is not None else ""
    raise AssertionError(f"no {status!r} line for {video_id}: {stderr}")


def _score_command(model_dir: Path, out: Path, *inputs: Path | str, workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "lanp_vad", "score", *map(str, inputs), "--model", str(model_dir), "--out",
            str(out), "--workers", str(workers), "--device", "cpu", "--no-progress"]


def test_good_videos_scored_bad_ones_recorded_and_tables_match_the_json(archive: Path, reference: Path) -> None:
    import pyarrow.parquet as pq

    documents = _documents(reference)
    assert sorted(documents) == GOOD_IDS

    summary = {row["video_id"]: row for row in _csv(reference / "summary.csv")}
    assert list(summary) == sorted(GOOD_IDS + BAD_IDS)
    errors = {record["video_id"]: record for record in _manifest(reference) if record["status"] == "failed"}
    for video_id in BAD_IDS:
        assert summary[video_id]["status"] == "failed"
        assert errors[video_id]["error_kind"] in (ErrorKind.CORRUPT, ErrorKind.NOT_VIDEO)
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


def test_run_json_records_the_model_and_the_settings_of_the_run(reference: Path) -> None:
    run = json.loads((reference / "run.json").read_text())
    document = json.loads(next((reference / "videos").glob("*.json")).read_text())
    assert run["model"]["id"] == document["model"]["id"]  # one model id in run.json, the JSON and the Parquet
    assert len(run["model"]["files_sha256"]) == 16 and run["scoring"]["threshold"] is None
    assert BatchConfig.model_validate(run["config"]) == BatchConfig(workers=2, plots=True, device="cpu")


def test_killed_run_resumes_without_rescoring_or_losing_a_video(
    archive: Path, model_dir: Path, reference: Path, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    total = len(expand_inputs([archive]))
    process = subprocess.Popen(_score_command(model_dir, out, archive), cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        if sum(r["status"] == "ok" for r in _manifest(out)) >= 3:
            break
        time.sleep(0.02)
    assert process.poll() is None, f"the run ended before it could be killed: {process.stderr.read().decode()}"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    first = _manifest(out)
    finished_first = {r["video_id"] for r in first if r["status"] in ("ok", "failed")}
    assert 3 <= len(finished_first) < total

    resumed = subprocess.run(_score_command(model_dir, out, archive), cwd=REPO_ROOT, capture_output=True,
                             timeout=300)
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

    again = run_batch(expand_inputs([archive]), model_dir, out, CPU.model_copy(update={"retry_failed": True}),
                      progress=False)
    assert again.skipped == total - 2 and again.failed == BAD_IDS
    retried = _manifest(out)[len(records):]
    assert sorted(r["video_id"] for r in retried if r["status"] == "started") == BAD_IDS


def test_a_hanging_video_is_killed_recorded_and_the_run_goes_on(model_dir: Path, archive: Path,
                                                                tmp_path: Path) -> None:
    fifo = tmp_path / "stuck.mp4"
    os.mkfifo(fifo)  # opening it for reading blocks forever: a decoder that hangs in native code
    videos = [VideoInput("stuck", fifo), VideoInput("clip", archive / "clips" / "yard.avi")]
    report = run_batch(videos, model_dir, tmp_path / "out", CPU.model_copy(update={"timeout_s": 15.0}),
                       progress=False)
    assert report.failed == ["stuck"] and report.scored == 1
    record = next(r for r in _manifest(tmp_path / "out") if r["status"] == "failed")
    assert record["error_kind"] == ErrorKind.TIMEOUT and "killed" in record["error"]
    assert 15.0 <= record["seconds"] < 60  # killed soon after the timeout, not waited for


def test_a_worker_that_dies_under_a_video_is_recorded_as_worker_crashed(model_dir: Path, archive: Path,
                                                                        tmp_path: Path) -> None:
    fifo = tmp_path / "victim.mp4"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    process = subprocess.Popen(_score_command(model_dir, out, fifo, archive / "clips" / "yard.avi", workers=1),
                               cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_record(out, process, "victim", "started")
        (worker,) = [pid for pid in _children(process.pid) if "resource_tracker" not in _cmdline(pid)]
        os.kill(worker, signal.SIGKILL)  # a decoder crash, as far as the coordinator can tell
        assert process.wait(timeout=180) == 1
    finally:
        process.kill()
    finals = {r["video_id"]: r for r in _manifest(out) if r["status"] in ("ok", "failed")}
    assert finals["victim"]["error_kind"] == ErrorKind.WORKER_CRASHED and "died" in finals["victim"]["error"]
    assert finals["yard"]["status"] == "ok", "the replacement worker goes on with the rest"


def test_workers_exit_soon_after_kill_9_of_the_coordinator(model_dir: Path, tmp_path: Path) -> None:
    """Issue 12, defect 6: a worker busy on a video (here: blocked opening a FIFO) must not outlive its parent."""
    fifo = tmp_path / "stuck.mp4"
    os.mkfifo(fifo)
    out = tmp_path / "out"
    process = subprocess.Popen(_score_command(model_dir, out, fifo, workers=1), cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_for_record(out, process, "stuck", "started")
        time.sleep(0.5)  # let the worker reach the blocking open
        descendants = _children(process.pid)
        assert descendants, "no worker process found"
        os.kill(process.pid, signal.SIGKILL)
        killed = time.monotonic()
        process.wait()
        while any(_alive(pid) for pid in descendants) and time.monotonic() - killed < 10:
            time.sleep(0.02)
        survivors = [(pid, _cmdline(pid)) for pid in descendants if _alive(pid)]
        lived_s = time.monotonic() - killed
    finally:
        for pid in descendants:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    # the kernel kills them at once; tearing down a process that holds torch takes a moment on a loaded machine
    assert not survivors and lived_s < 3.0, f"{survivors} outlived their parent by {lived_s:.1f} s"


def test_named_non_video_files_are_failed_no_video_stream_in_the_summary(model_dir: Path, archive: Path,
                                                                        tmp_path: Path) -> None:
    """Issue 12, defect 11: an audio file the user named (directly or by a pattern that spells its extension out)
    is accounted for; a folder still only yields files with a video extension."""
    import av

    calls = tmp_path / "calls"
    calls.mkdir()
    write_audio_only(calls / "tone.wav")
    with av.open(str(calls / "voice.m4a"), mode="w") as container:  # AAC in an MPEG-4 audio file
        stream = container.add_stream("aac", rate=8000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    write_video(calls / "door.mp4", num_frames=20)

    inputs = [str(calls / "*.m4a"), calls / "tone.wav", archive / "clips" / "night" / "entrance.mp4"]
    result = subprocess.run(_score_command(model_dir, tmp_path / "out", *inputs, workers=1), cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    summary = {row["video_id"]: row for row in _csv(tmp_path / "out" / "summary.csv")}
    assert sorted(summary) == ["entrance", "tone", "voice"]
    for video_id in ("tone", "voice"):
        assert summary[video_id]["status"] == "failed"
        assert summary[video_id]["error"].startswith(f"{ErrorKind.NO_VIDEO_STREAM}: ")
    assert summary["entrance"]["status"] == "ok"
    assert [video.video_id for video in expand_inputs([calls])] == ["door"]


def test_output_folder_of_another_model_is_refused(model_dir: Path, reference: Path, archive: Path,
                                                   tmp_path: Path) -> None:
    other = tmp_path / "other-model"
    shutil.copytree(model_dir, other)
    metadata = json.loads((other / "metadata.json").read_text())
    (other / "metadata.json").write_text(json.dumps({**metadata, "threshold": 0.9}))
    before = (reference / "manifest.jsonl").read_bytes()
    with pytest.raises(BatchError, match="another --out") as raised:
        run_batch(expand_inputs([archive]), other, reference, CPU, progress=False)
    assert raised.value.kind == ErrorKind.CONFLICT
    assert (reference / "manifest.jsonl").read_bytes() == before
    recorded = (reference / "run.json").read_text()
    run = json.loads(recorded)
    (reference / "run.json").write_text(json.dumps({**run, "model": run["model"]["files_sha256"]}))
    try:
        with pytest.raises(BatchError, match="another version of lanp-vad"):  # a run.json of another layout
            run_batch(expand_inputs([archive]), model_dir, reference, CPU, progress=False)
    finally:
        (reference / "run.json").write_text(recorded)


def test_invalid_settings_are_one_user_error_naming_them() -> None:
    with pytest.raises(BatchError, match="workers") as raised:
        BatchConfig.build(workers=0, engine="local")
    assert raised.value.kind == ErrorKind.INVALID_CONFIG


def test_a_rerun_with_other_segment_settings_resegments_without_scoring_again(
    model_dir: Path, reference: Path, archive: Path, tmp_path: Path
) -> None:
    from lanp_vad.pipeline.scoring.config import ScoringConfig
    from lanp_vad.pipeline.scoring.result import resegment

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

    from lanp_vad.cli import main

    assert main(["segments", str(out), "--threshold", "0.99", "--merge-gap", "5"]) == 0  # the CLI over the same
    strict = _documents(out)
    assert all(doc["threshold"] == 0.99 and doc["segment_config"]["merge_gap_s"] == 5 for doc in strict.values())
    assert len(_csv(out / "segments.csv")) == sum(len(doc["segments"]) for doc in strict.values())
    assert json.loads((out / "run.json").read_text())["scoring"]["threshold"] == 0.99
    assert _manifest(out) == _manifest(reference)


def test_cli_usage_errors_exit_2(archive: Path, model_dir: Path, tmp_path: Path, capsys) -> None:
    from lanp_vad.cli import main

    clips = archive / "clips"
    assert main(["score", str(tmp_path / "missing.mp4"), "--model", str(model_dir)]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["score", str(clips), "--model", str(model_dir)]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["score", str(clips), "--model", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a model directory" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        main(["score", str(clips), "--model", str(model_dir), "--threshold", "1.5"])
    assert raised.value.code == 2


def test_single_video_prints_the_score_document(archive: Path, model_dir: Path, reference: Path, capsys) -> None:
    from lanp_vad.cli import main

    assert main(["score", str(archive / "clips" / "gate.webm"), "--model", str(model_dir), "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    printed = json.loads(captured.out)
    stored = json.loads((reference / "videos" / "clips__gate.json").read_text())
    top = max(printed["frame_scores"])
    assert f"gate.webm: {len(printed['segments'])} event(s), top score {top:.2f}" in captured.err
    assert printed.keys() == stored.keys() and printed["num_frames"] == stored["num_frames"]
    np.testing.assert_allclose(printed["snippet_scores"], stored["snippet_scores"], rtol=0, atol=1e-6)
    assert main(["score", str(archive / "bad" / "notes.mp4"), "--model", str(model_dir), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "notes.mp4" in captured.err and not captured.out


def test_ped2_clips_score_in_a_batch(model_dir: Path, shared_data: Path, tmp_path: Path) -> None:
    """The one test on real surveillance footage (skipped without ../shared): two UCSD Ped2 test clips."""
    folder = shared_data / "ucsd-ped2" / "videos" / "test"
    videos = expand_inputs([folder / "01.mp4", folder / "02.mp4"])
    report = run_batch(videos, model_dir, tmp_path, CPU, progress=False)
    assert report.ok and report.scored == 2
    for document in _documents(tmp_path).values():
        assert len(document["snippet_scores"]) == -(-document["num_frames"] // 16) and document["num_frames"] > 100
