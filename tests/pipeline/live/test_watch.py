"""``lanp watch`` for real on 127.0.0.1: a source process plays a clip as MPEG-TS over HTTP at real-time pace; the
watcher starts before it (reconnects until it is up), the source is killed mid-way and started again, and the
scores and events of the full second play must equal offline scoring of the same clip (``Scorer.score_video``)."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.service.conftest import free_port
from tests.service.tiny_model import make_tiny_model
from tests.videos import write_video

FRAMES, FPS = 120, 25  # 7.5 snippets: the last one is padded, as offline


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=FRAMES, width=160, height=120,
                       fps=FPS)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("model") / "tiny")


def _python(*args: str, **kwargs: object) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, env=env, **kwargs)  # type: ignore[call-overload]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen]]:
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def _source(clip: Path, port: int, *args: str) -> subprocess.Popen:
    process = _python("-m", "tests.pipeline.live.stream_source", str(clip), "--port", str(port), *args,
                      stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == f"PORT {port}"
    return process


def _records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [json.loads(line) for line in lines if line.endswith("}")]


def _wait_for(path: Path, done: Callable[[list[dict]], bool], watcher: subprocess.Popen,
              timeout: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = _records(path)
        if done(records):
            return records
        assert watcher.poll() is None, f"the watcher exited ({watcher.returncode}): {[r['type'] for r in records]}"
        time.sleep(0.1)
    raise AssertionError(f"timed out; records so far: {[r['type'] for r in _records(path)]}")


def _of(records: list[dict], kind: str, session: int | None = None) -> list[dict]:
    return [r for r in records if r["type"] == kind and (session is None or r.get("session") == session)]


@pytest.mark.timeout(300)
def test_watch_reconnects_and_scores_like_offline(clip: Path, model: Path, tmp_path: Path,
                                                  processes: list[subprocess.Popen]) -> None:
    from lanp_vad.pipeline.scoring.scorer import Scorer

    port, out = free_port(), tmp_path / "watch.jsonl"
    watcher = _python("-m", "lanp_vad", "watch", f"http://127.0.0.1:{port}/camera.ts", "--model", str(model),
                      "--out", str(out), "--reconnect-max", "0.5", "--read-timeout", "5", "--device", "cpu",
                      "--backlog", "1000")  # no drops on a loaded machine: this test is about equal scores
    processes.append(watcher)
    _wait_for(out, lambda rs: bool(_of(rs, "reconnecting")), watcher)  # nothing listens yet: it retries
    processes.append(source := _source(clip, port, "--die-after", "2.5"))  # half-way through the clip
    assert source.wait(timeout=60) == 3
    _wait_for(out, lambda rs: bool(_of(rs, "disconnected", 1)), watcher)
    time.sleep(1.0)  # a few refused attempts while the source is down
    processes.append(_source(clip, port))
    records = _wait_for(out, lambda rs: bool(_of(rs, "disconnected", 2)), watcher)  # the whole clip played once
    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(timeout=60) == 0
    records = _records(out)
    assert records[0]["type"] == "start" and records[-1]["type"] == "stopped"
    assert records[-1]["reason"] == "stop requested"

    offline = Scorer.from_model_dir(model, device="cpu").score_video(clip)
    radius = 1  # the tiny classifier's temporal kernel is 3

    # the interrupted play: its complete snippets whose right-hand neighbour arrived score as offline
    first = _of(records, "snippet", 1)
    complete = [r for r in first if not r["padded"]]
    comparable = complete[: len(complete) - radius]
    assert comparable and _of(records, "disconnected", 1)[0]["kind"] == "stream_lost"
    assert _of(records, "disconnected", 1)[0]["frames"] < FRAMES
    np.testing.assert_allclose([r["score"] for r in comparable], offline.snippet_scores[: len(comparable)],
                               atol=1e-5)
    lost, back = records.index(_of(records, "disconnected", 1)[0]), records.index(_of(records, "connected", 2)[0])
    between = records[lost:back]
    assert any(r["type"] == "reconnecting" and r["kind"] == "source_unreachable" for r in between)

    # the full play: every snippet, frame range and time, and every event, as offline
    second = _of(records, "snippet", 2)
    assert [r["snippet"] for r in second] == list(range(offline.snippet_scores.size))
    np.testing.assert_allclose([r["score"] for r in second], offline.snippet_scores, atol=1e-5)
    assert second[-1]["padded"] and second[-1]["end_frame"] == FRAMES
    np.testing.assert_allclose([r["start_s"] for r in second], offline.timestamps[::16], atol=1e-6)
    assert _of(records, "disconnected", 2)[0]["frames"] == FRAMES
    ended = _of(records, "event_end", 2)
    assert [(e["start_frame"], e["end_frame"]) for e in ended] == [
        (s.start_frame, s.end_frame) for s in offline.segments]
    assert offline.segments, "the tiny model's threshold should give this clip an event"
    for event, segment in zip(ended, offline.segments, strict=True):
        assert event["peak"] == pytest.approx(segment.peak, abs=1e-5)
        assert event["mean"] == pytest.approx(segment.mean, abs=1e-5)
        assert event["start_s"] == pytest.approx(segment.start_s) and event["end_s"] == pytest.approx(segment.end_s)
    starts = _of(records, "event_start", 2)
    assert [e["start_frame"] for e in starts] == [s.start_frame for s in offline.segments]
    assert records.index(starts[0]) < records.index(ended[0])

    from PIL import Image

    from lanp_vad.pipeline.features.spec import FeatureSpec
    from lanp_vad.pipeline.video.reader import output_size

    thumbnail = Image.open(io.BytesIO(base64.b64decode(ended[0]["thumbnail"]["jpeg_base64"])))
    delivered = output_size(160, 120, None, FeatureSpec.load(model).decode_short_side)  # the frame the model saw
    assert thumbnail.format == "JPEG" and thumbnail.size == delivered
    for record in second:
        assert record["latency_s"] >= 0 and record["first_frame_latency_s"] >= record["latency_s"]
    walls = [r["wall_time"] for r in records]
    assert walls == sorted(walls)


def test_watch_refuses_an_unknown_scheme(model: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lanp_vad", "watch", "gopher://127.0.0.1/x", "--model", str(model)],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "gopher" in result.stderr and "Traceback" not in result.stderr


def test_watch_gives_up_after_the_reconnect_limit(model: Path, tmp_path: Path) -> None:
    out = tmp_path / "watch.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "lanp_vad", "watch", f"http://127.0.0.1:{free_port()}/x.ts", "--model", str(model),
         "--out", str(out), "--max-reconnects", "2", "--reconnect-max", "0.2", "--device", "cpu"],
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=120,
    )
    records = _records(out)
    assert result.returncode == 1, result.stderr
    assert [r["type"] for r in records] == ["start", "reconnecting", "reconnecting", "gave_up", "stopped"]
    assert records[3]["kind"] == "source_unreachable"


def _remux_to_ts(clip: Path, out: Path) -> bytes:
    import av

    with av.open(str(clip)) as source, av.open(str(out), "w", format="mpegts") as target:
        video = source.streams.video[0]
        stream = target.add_stream_from_template(video)
        for packet in source.demux(video):
            if packet.dts is not None:
                packet.stream = stream
                target.mux(packet)
    return out.read_bytes()


@pytest.fixture(scope="module")
def context_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny head with the video context over 3 snippets, fewer than the clip's 8: the mean slides."""
    return make_tiny_model(tmp_path_factory.mktemp("context") / "tiny", context="trailing_mean", context_window=3)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("model_name", ["model", "context_model"])
def test_watch_reads_a_file_while_it_grows(clip: Path, model_name: str, tmp_path: Path,
                                           processes: list[subprocess.Popen], request: pytest.FixtureRequest) -> None:
    from lanp_vad.pipeline.scoring.scorer import Scorer

    model: Path = request.getfixturevalue(model_name)

    data = _remux_to_ts(clip, tmp_path / "whole.ts")
    growing, out = tmp_path / "recording.ts", tmp_path / "watch.jsonl"
    growing.write_bytes(data[: len(data) // 3])  # a recorder has written the first third
    watcher = _python("-m", "lanp_vad", "watch", str(growing), "--model", str(model), "--out", str(out),
                      "--read-timeout", "4", "--device", "cpu", "--threads", "1")
    processes.append(watcher)
    _wait_for(out, lambda rs: bool(_of(rs, "snippet", 1)), watcher)
    with growing.open("ab") as recorder:
        recorder.write(data[len(data) // 3 :])
    assert watcher.wait(timeout=120) == 0  # it stops by itself once the file has not grown for 4 s
    records = _records(out)
    assert [r["type"] for r in records if r["type"] in ("connected", "disconnected", "stopped")] == [
        "connected", "disconnected", "stopped"]
    assert "stopped growing" in _of(records, "disconnected")[0]["reason"]
    offline = Scorer.from_model_dir(model, device="cpu").score_video(clip)
    np.testing.assert_allclose([r["score"] for r in _of(records, "snippet")], offline.snippet_scores, atol=1e-5)
    assert not _of(records, "warning")  # a model without training statistics cannot tell, so it never warns


def _watch_recording(clip: Path, model: Path, tmp_path: Path, processes: list[subprocess.Popen]) -> list[dict]:
    """``lanp watch`` of the clip remuxed to a finished MPEG-TS recording, to its end: the records it wrote."""
    recording, out = tmp_path / "recording.ts", tmp_path / "watch.jsonl"
    _remux_to_ts(clip, recording)
    watcher = _python("-m", "lanp_vad", "watch", str(recording), "--model", str(model), "--out", str(out),
                      "--read-timeout", "2", "--device", "cpu", "--threads", "1")
    processes.append(watcher)
    assert watcher.wait(timeout=120) == 0
    return _records(out)


@pytest.mark.timeout(300)
def test_a_stream_unlike_the_training_footage_warns_once(clip: Path, tmp_path: Path,
                                                          processes: list[subprocess.Popen]) -> None:
    """The live panel's warning: a model whose normal is flat grey watches a moving scene. One ``warning`` record
    (domain shift, its figure and what to do), as offline scoring of the same clip warns."""
    from lanp_vad.pipeline.scoring.scorer import Scorer
    from tests.service.tiny_model import make_shifted_model

    model = make_shifted_model(tmp_path / "shifted")
    records = _watch_recording(clip, model, tmp_path, processes)
    (warning,) = _of(records, "warning")
    assert warning["kind"] == "domain_shift" and warning["session"] == 1
    assert warning["domain_shift"]["score"] > warning["domain_shift"]["threshold"]
    assert "train again" in warning["message"]
    offline = Scorer.from_model_dir(model, device="cpu").score_video(clip)
    assert [item.kind for item in offline.warnings if item.kind == "domain_shift"] == ["domain_shift"]


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's head over every frame of a snippet at 160 px: inference far slower than decoding."""
    from lanp_vad.models.classifier import create_classifier
    from lanp_vad.models.config import ClassifierConfig, LANPConfig
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.training.model_dir import save_model

    spec = FeatureExtractor(ExtractionConfig(frames_per_snippet=16, crop_size=160, device="cpu")).spec
    config = LANPConfig(classifier=ClassifierConfig(hidden=32, dropout=0.0))
    classifier = create_classifier(dim=spec.dim, config=config.classifier, seed=3)
    return save_model(tmp_path_factory.mktemp("heavy") / "heavy", classifier, spec, config, {"threshold": 0.5})


@pytest.mark.timeout(300)
def test_watch_drops_whole_snippets_when_inference_falls_behind(clip: Path, heavy_model: Path,
                                                                processes: list[subprocess.Popen]) -> None:
    """The source plays 200x faster than real time into a one-snippet backlog: snippets are dropped whole, each
    snippet is either scored or reported dropped (with its lag), and the session still covers every frame."""
    import threading

    from lanp_vad.pipeline.live.source import SourceConfig
    from lanp_vad.pipeline.live.watcher import WatchConfig, Watcher
    from lanp_vad.pipeline.scoring.config import ScoringConfig
    from lanp_vad.pipeline.scoring.scorer import Scorer

    port = free_port()
    process = _python("-m", "tests.pipeline.live.stream_source", str(clip), "--port", str(port), "--speed", "200",
                      stdout=subprocess.PIPE, text=True)
    processes.append(process)
    assert process.stdout.readline().startswith("PORT")
    records: list[dict] = []
    scorer = Scorer.from_model_dir(heavy_model, device="cpu", config=ScoringConfig(decode_timeout_s=None))
    config = WatchConfig(backlog_snippets=1, batch_snippets=1, source=SourceConfig(max_reconnects=0))
    watcher = Watcher(scorer, f"http://127.0.0.1:{port}/camera.ts", records.append, config)
    backlog_sizes: list[int] = []
    original_put = watcher.backlog.put

    def put(item: object) -> None:
        original_put(item)  # type: ignore[arg-type]
        backlog_sizes.append(len(watcher.backlog))

    watcher.backlog.put = put  # type: ignore[method-assign]  (observes the real backlog, changes nothing)
    runner = threading.Thread(target=watcher.run)
    runner.start()
    deadline = time.monotonic() + 120
    while not any(r["type"] == "disconnected" for r in records) and time.monotonic() < deadline:
        time.sleep(0.05)
    watcher.stop()
    runner.join(60)
    dropped, scored = _of(records, "dropped", 1), _of(records, "snippet", 1)
    assert dropped, "at 200x real time 16 frames a snippet at 160 px cannot keep up"
    assert sorted(r["snippet"] for r in dropped + scored) == list(range(8))  # each snippet exactly once
    assert all(r["lag_s"] >= 0 and r["end_frame"] - r["start_frame"] in (8, 16) for r in dropped)
    assert _of(records, "disconnected", 1)[0]["frames"] == FRAMES
    assert max(backlog_sizes) <= 1  # memory: one snippet's frames wait, whatever the lag
    assert records[-1]["type"] == "stopped" and records[-1]["snippets_dropped"] == len(dropped)


@pytest.mark.timeout(300)
def test_watch_over_udp_scores_like_offline(clip: Path, model: Path, processes: list[subprocess.Popen]) -> None:
    """MPEG-TS over UDP to a listening watcher: the whole clip arrives, its scores equal offline scoring."""
    import threading

    from lanp_vad.pipeline.live.source import SourceConfig
    from lanp_vad.pipeline.live.watcher import WatchConfig, Watcher
    from lanp_vad.pipeline.scoring.config import ScoringConfig
    from lanp_vad.pipeline.scoring.scorer import Scorer

    port, records = free_port(), []
    scorer = Scorer.from_model_dir(model, device="cpu", config=ScoringConfig(decode_timeout_s=None))
    scorer.warm_up()
    config = WatchConfig(backlog_snippets=1000, source=SourceConfig(open_timeout_s=120, read_timeout_s=3,
                                                                     max_reconnects=0))
    watcher = Watcher(scorer, f"udp://127.0.0.1:{port}", records.append, config)
    runner = threading.Thread(target=watcher.run)
    runner.start()
    time.sleep(2.0)  # the reader is listening (its first attempt waits up to two minutes for data)
    processes.append(sender := _python("-m", "tests.pipeline.live.stream_source", str(clip), "--udp",
                                       f"127.0.0.1:{port}"))
    assert sender.wait(timeout=60) == 0
    runner.join(60)  # the sender is done: the read timeout ends the session, no reconnect is allowed
    assert not runner.is_alive()
    offline = Scorer.from_model_dir(model, device="cpu").score_video(clip)
    np.testing.assert_allclose([r["score"] for r in _of(records, "snippet", 1)], offline.snippet_scores, atol=1e-5)
    assert _of(records, "disconnected", 1)[0]["frames"] == FRAMES


@pytest.mark.timeout(300)
def test_a_default_preset_model_scores_a_stream_with_its_stream_calibration(clip: Path, tmp_path: Path,
                                                                           processes: list[subprocess.Popen]) -> None:
    """A model with a normality bank and calibration: each live snippet, scored once its right-hand neighbours
    have arrived, equals the stream detector (classifier and bank, no within-video view) on the whole clip."""
    from lanp_vad.pipeline.scoring.scorer import Scorer
    from tests.service.tiny_model import make_detector_model

    model = make_detector_model(tmp_path / "detector")
    records = _watch_recording(clip, model, tmp_path, processes)
    scorer = Scorer.from_model_dir(model, device="cpu")
    features = scorer.extractor.extract_video(clip).features
    live = np.array([record["score"] for record in _of(records, "snippet")])
    np.testing.assert_allclose(live, scorer.head.for_stream()(features), atol=1e-5)
    assert np.abs(live - scorer.head(features)).max() > 1e-4  # a whole file adds the video's own propagation
