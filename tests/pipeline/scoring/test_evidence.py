"""Event evidence cut from real (PyAV-written) videos: right frames, right span, decodable, bounded memory."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from lanp_vad.pipeline.scoring.config import EvidenceConfig
from lanp_vad.pipeline.scoring.evidence import container_start_time, render_thumbnail, write_event_clip, write_evidence
from tests.conftest import REPO_ROOT
from tests.videos import write_video

FPS = 10


def _indexed(index: int, height: int, width: int) -> np.ndarray:
    """Frame ``index`` is one flat grey level of its own (10 + 2 * index): unambiguous after compression."""
    return np.full((height, width, 3), 10 + 2 * index, dtype=np.uint8)


def _with_creation_time(source: Path, target: Path, stamp: str) -> Path:
    """Remux ``source`` into ``target`` with the container's ``creation_time`` set (as cameras record it)."""
    with av.open(str(source)) as reader, av.open(str(target), mode="w") as writer:
        writer.metadata["creation_time"] = stamp
        stream = writer.add_stream_from_template(reader.streams.video[0])
        for packet in reader.demux(reader.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                writer.mux(packet)
    return target


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evidence")
    plain = write_video(folder / "plain.mp4", num_frames=120, fps=FPS, width=96, height=64, content=_indexed)
    return _with_creation_time(plain, folder / "clip.mp4", "2024-05-01T14:30:00.000000Z")


def _frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24").astype(np.float64) for frame in container.decode(video=0)]


def _nearest(picture: np.ndarray, frames: list[np.ndarray]) -> int:
    return int(np.argmin([np.mean((picture - frame) ** 2) for frame in frames]))


def test_the_thumbnail_shows_the_frame_at_its_time(clip: Path) -> None:
    frames = _frames(clip)
    for seconds in (0.0, 3.0, 7.5, 11.9):
        image = Image.open(io.BytesIO(render_thumbnail(clip, seconds)))
        assert image.format == "JPEG" and image.size == (96, 64)
        assert _nearest(np.asarray(image.convert("RGB"), dtype=np.float64), frames) == int(seconds * FPS)
    assert max(Image.open(io.BytesIO(render_thumbnail(clip, 3.0, max_side=48))).size) == 48


def test_the_clip_spans_the_event_with_its_roll_clamped_to_the_video(clip: Path, tmp_path: Path) -> None:
    source = _frames(clip)
    info = write_event_clip(clip, tmp_path / "1.mp4", 5.0, 6.0, pre_roll_s=1.0, post_roll_s=1.0)
    written = _frames(info.path)
    assert info.frames == len(written) == 30 and (info.start_s, info.end_s) == pytest.approx((4.0, 7.0))
    assert _nearest(written[0], source) == 40 and _nearest(written[-1], source) == 69
    edge = write_event_clip(clip, tmp_path / "2.mp4", 0.5, 11.5, pre_roll_s=3.0, post_roll_s=3.0)
    assert edge.frames == len(_frames(edge.path)) == 120 and edge.start_s == 0.0


def test_evidence_for_every_event_of_a_document(clip: Path, tmp_path: Path) -> None:
    timestamps = [i / FPS for i in range(120)]
    document = {"timestamps": timestamps, "segments": [
        {"index": 1, "start_frame": 10, "end_frame": 20, "start_s": 1.0, "end_s": 2.0, "peak_frame": 15},
        {"index": 2, "start_frame": 80, "end_frame": 90, "start_s": 8.0, "end_s": 9.0, "peak_frame": 88},
    ]}
    records = write_evidence(document, clip, tmp_path, EvidenceConfig(clips=True, pre_roll_s=0.5, post_roll_s=0.5))
    assert [r["index"] for r in records] == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.jpg", "1.mp4", "2.jpg", "2.mp4"]
    peak = np.asarray(Image.open(tmp_path / "2.jpg").convert("RGB"), dtype=np.float64)
    assert _nearest(peak, _frames(clip)) == 88
    assert len(_frames(tmp_path / "2.mp4")) == 20
    assert write_evidence(document, tmp_path, tmp_path / "none", EvidenceConfig()) == []  # a folder: no evidence


def test_the_start_time_comes_from_the_container(clip: Path, tmp_path: Path) -> None:
    assert container_start_time(clip).isoformat() == "2024-05-01T14:30:00+00:00"
    assert container_start_time(write_video(tmp_path / "plain.mp4", num_frames=3)) is None


MEMORY_PROBE = """
import json, resource, sys
from lanp_vad.pipeline.scoring.evidence import render_thumbnail, write_event_clip
source, out, start, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
info = write_event_clip(source, out, start, end, pre_roll_s=0, post_roll_s=0)
render_thumbnail(source, end)
print(json.dumps({"frames": info.frames, "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def test_memory_stays_bounded_on_a_long_video(tmp_path: Path) -> None:
    """Cutting 150 s (3,750 frames of 320x240: 860 MB as RGB) costs no more memory than cutting 1 s."""
    long_video = write_video(tmp_path / "long.mp4", num_frames=25 * 160, fps=25, width=320, height=240,
                             options={"preset": "ultrafast"})

    def probe(start: float, end: float) -> dict[str, int]:
        result = subprocess.run([sys.executable, "-c", MEMORY_PROBE, str(long_video), str(tmp_path / "c.mp4"),
                                 str(start), str(end)], capture_output=True, text=True, check=True, cwd=REPO_ROOT,
                                timeout=600)
        return json.loads(result.stdout)

    short, long = probe(150.0, 151.0), probe(5.0, 155.0)
    assert short["frames"] == 25 and long["frames"] == 25 * 150
    assert long["rss_kb"] - short["rss_kb"] < 80 * 1024, (short, long)


def test_a_clip_of_a_file_with_dropped_frames_keeps_real_time(tmp_path: Path) -> None:
    """A recorder that kept 15 of 40 frames (gaps up to 0.8 s): the clip shows each stored frame at its own time,
    so its 4 s of recording last 4 s, not 15 frames at the nominal rate (1.5 s)."""
    from tests.pipeline.video.test_decode import DROPPED, FPS, write_dropped_frames_avi

    source = write_dropped_frames_avi(tmp_path / "dropped.avi", stored=DROPPED)
    info = write_event_clip(source, tmp_path / "clip.mp4", 0.0, 4.0, pre_roll_s=0, post_roll_s=0)
    with av.open(str(info.path)) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert info.frames == len(DROPPED)
    np.testing.assert_allclose(times, np.asarray(DROPPED) / FPS, atol=2e-3)


def test_a_clip_scaled_to_a_maximum_side(clip: Path, tmp_path: Path) -> None:
    with av.open(str(clip)) as container:
        width, height = container.streams.video[0].width, container.streams.video[0].height
    info = write_event_clip(clip, tmp_path / "small.mp4", 0.0, 1.0, pre_roll_s=0, post_roll_s=0, max_side=32)
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        assert max(stream.width, stream.height) <= 32 and stream.width / stream.height == pytest.approx(
            width / height, rel=0.15)
