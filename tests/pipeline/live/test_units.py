"""The live room's parts against their offline twins: snippets, scores with temporal context, segments, backlog."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from lanp_vad.pipeline.live.assembler import SessionEnd, SnippetAssembler
from lanp_vad.pipeline.live.backlog import Backlog
from lanp_vad.pipeline.live.context import TemporalContext
from lanp_vad.pipeline.live.segmenter import LiveSegmenter
from lanp_vad.pipeline.scoring.segments import find_segments
from lanp_vad.pipeline.video.worker import DecodeSettings
from tests.videos import write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("live") / "clip.mp4", num_frames=53, width=96, height=64, fps=12)


def _live_snippets(clip: Path, settings: DecodeSettings) -> tuple[list, SessionEnd]:
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        assembler = SnippetAssembler(settings, session=1, source_fps=float(stream.average_rate),
                                     width=stream.width, height=stream.height)
        snippets = [s for frame in container.decode(stream) for s in assembler.push(float(frame.time), frame)]
    tail, end = assembler.finish("end of stream")
    return snippets + tail, end


@pytest.mark.parametrize(
    "settings",
    [
        DecodeSettings(frames_per_snippet=4),
        DecodeSettings(frames_per_snippet=16, stride=8, max_side=48),
        DecodeSettings(frames_per_snippet=2, target_fps=7.0, max_short_side=40),
        DecodeSettings(frames_per_snippet=4, target_fps=30.0, pad_last=False),
    ],
    ids=["plain", "overlap-downscaled", "resampled-down", "resampled-up-no-pad"],
)
def test_assembled_snippets_equal_offline_decoding(clip: Path, settings: DecodeSettings) -> None:
    reader, plan = settings.open(clip)
    with reader:
        offline = np.concatenate([chunk for _, chunk in settings.iter_chunks(reader, plan, 4)])
        times = reader.info.timestamps_s
    snippets, end = _live_snippets(clip, settings)
    assert [s.index for s in snippets] == list(range(plan.num_snippets))
    np.testing.assert_array_equal(np.stack([s.frames for s in snippets]), offline)
    # every delivered frame is covered once, by the snippet offline scoring gives it, with the same stream time
    covered = np.concatenate([s.times for s in snippets] + [end.leftover_times])
    np.testing.assert_allclose(covered, times, atol=1e-9)
    owners = np.concatenate([np.full(s.times.size, s.index) for s in snippets])
    mapping = np.where(plan.frame_to_snippet < 0, plan.num_snippets - 1, plan.frame_to_snippet)
    np.testing.assert_array_equal(owners, mapping[: owners.size])


@pytest.mark.parametrize("video_context", ["none", "trailing_mean"])
def test_context_scores_equal_whole_sequence_scores(video_context: str) -> None:
    import torch

    from lanp_vad.models.classifier import create_classifier
    from lanp_vad.models.config import ClassifierConfig
    from lanp_vad.models.torch_head import TorchHead

    config = ClassifierConfig(hidden=16, dropout=0.0, kernel_size=5, context=video_context, context_window=4)
    classifier = create_classifier(dim=8, config=config, seed=1).eval()

    def classify(features: np.ndarray, reference: np.ndarray | None = None) -> np.ndarray:
        given = None if reference is None else torch.as_tensor(reference).unsqueeze(0)
        with torch.inference_mode():
            return classifier(torch.as_tensor(features).unsqueeze(0), given).reshape(-1).double().numpy()

    features = np.random.default_rng(0).normal(size=(11, 8)).astype(np.float32)
    window = 4 if video_context == "trailing_mean" else None  # shorter than the session: the mean slides
    context: TemporalContext[int] = TemporalContext(classify, TorchHead(classifier, torch.device("cpu")).radius,
                                                    context_window=window)
    assert context.radius == 2
    scored, pending_max = [], 0
    for index, row in enumerate(features):
        scored += context.add(index, row)
        pending_max = max(pending_max, len(context.features))
    scored += context.finish()
    assert [index for index, _ in scored] == list(range(11))
    np.testing.assert_allclose([score for _, score in scored], classify(features), atol=1e-6)
    assert pending_max <= 2 * context.radius + 1  # memory: the receptive field, not the session


def test_live_segments_equal_offline_segments() -> None:
    rng = np.random.default_rng(0)
    for _ in range(150):
        fps = float(rng.choice([7.5, 10.0, 25.0]))
        snippets = rng.random(int(rng.integers(1, 40))) ** rng.uniform(0.3, 3)
        count = snippets.size * 16 - int(rng.integers(0, 16))
        scores = snippets[np.minimum(np.arange(count) // 16, snippets.size - 1)]
        times = np.arange(count) / fps + 0.25
        rules = {"smooth_s": float(rng.choice([0.0, 0.5, 1.3])), "min_duration_s": float(rng.choice([0.0, 0.5, 2.0])),
                 "merge_gap_s": float(rng.choice([0.0, 1.0, 3.0]))}
        offline = find_segments(scores, fps, 0.5, timestamps_s=times, **rules)
        live = LiveSegmenter(fps, 0.5, **rules)
        events, position = [], 0
        while position < count:
            step = int(rng.integers(1, 40))
            events += live.add(scores[position : position + step], times[position : position + step])
            position += step
        events += live.finish()
        assert [e.segment for e in events if e.kind == "end"] == offline
        assert [e.segment.start_frame for e in events if e.kind == "start"] == [s.start_frame for s in offline]
        starts = [i for i, e in enumerate(events) if e.kind == "start"]
        ends = [i for i, e in enumerate(events) if e.kind == "end"]
        assert all(s < e for s, e in zip(starts, ends, strict=True))  # announced before it closes


def test_segmenter_forgets_quiet_stretches() -> None:
    live = LiveSegmenter(25.0, 0.5, smooth_s=0.5, min_duration_s=0.5, merge_gap_s=1.0)
    for chunk in range(2000):
        live.add(np.full(16, 0.9 if 100 <= chunk < 110 else 0.1), np.arange(16) / 25.0 + chunk * 16 / 25.0)
        assert live.scores.size < 16 * 20  # one event's frames at most, never the session's
    assert live.num_frames == 32000


def test_backlog_drops_the_oldest_pixels_and_keeps_order() -> None:
    from lanp_vad.pipeline.live.assembler import Snippet

    def snippet(index: int) -> Snippet:
        return Snippet(1, index, np.zeros((1, 2, 2, 3), np.uint8), index * 16, np.zeros(16), 0.0, 0.0, 25.0)

    backlog = Backlog(2)
    for index in range(5):
        backlog.put(snippet(index))
    backlog.put(SessionEnd(1, "end of stream", None))
    assert len(backlog) == 2 and backlog.dropped == 3
    items = backlog.take(10)
    assert [item.dropped for item in items[:5]] == [True, True, True, False, False]
    assert [item.index for item in items[:5]] == [0, 1, 2, 3, 4] and isinstance(items[5], SessionEnd)
    assert all(item.frames is None for item in items[:3])
    backlog.close()
    assert backlog.take(10, timeout=0.1) == []
