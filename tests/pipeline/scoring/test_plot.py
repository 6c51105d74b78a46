"""The plot on its own: frame numbers, numbered events, threshold, ground truth strip, wall clock, legend clear."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from lanp_vad.models.errors import UserError
from lanp_vad.pipeline.scoring.plot import plot_png, score_figure
from lanp_vad.pipeline.scoring.result import DomainShift, EventSegment, VideoScore, domain_shift_warning


def _score(start_time: str | None = None) -> VideoScore:
    fps, frames = 10.0, 200
    scores = np.full(frames, 0.1)
    scores[50:80] = 0.9
    scores[120:150] = 0.8
    return VideoScore(
        video="cam.mp4", fps=fps, num_frames=frames, duration_s=frames / fps, threshold=0.5,
        model={"id": "m@0", "name": "m", "sha256": "0" * 64, "threshold": 0.5, "threshold_source": "metadata",
               "device": "cpu"},
        feature_spec={}, num_snippets=13, snippet_scores=scores[::16], frame_scores=scores,
        frame_snippets=np.arange(frames) // 16, timestamps=np.arange(frames) / fps, start_time=start_time,
        segments=[EventSegment(index=1, start_frame=50, end_frame=80, start_s=5.0, end_s=8.0, peak=0.9, peak_frame=50,
                               mean=0.9),
                  EventSegment(index=2, start_frame=120, end_frame=150, start_s=12.0, end_s=15.0, peak=0.8,
                               peak_frame=120, mean=0.8)],
    )


def _texts(figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].texts]


def test_events_are_numbered_and_the_legend_lies_outside_the_curve() -> None:
    figure = score_figure(_score())
    axes = figure.axes[0]
    assert _texts(figure) == ["#1", "#2"]
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert labels == ["anomaly score", "threshold 0.5", "event"]
    figure.canvas.draw()
    legend_box = axes.get_legend().get_window_extent()
    assert legend_box.x0 >= axes.get_window_extent().x1  # right of the plotting area, never over the curve
    assert any("frame" in ax.get_xlabel() for ax in figure.axes[0].child_axes)
    assert axes.get_xlabel() == "time (s)"


def test_ground_truth_strip_and_its_length_check() -> None:
    truth = np.zeros(200, dtype=np.uint8)
    truth[55:85] = 1
    figure = score_figure(_score(), ground_truth=truth)
    assert "ground truth (abnormal)" in [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert figure.axes[0].get_ylim()[0] < 0  # room under the curve for the strip
    with pytest.raises(UserError, match="ground truth has 10 frames"):
        score_figure(_score(), ground_truth=np.zeros(10))


def test_wall_clock_from_the_result_or_given() -> None:
    figure = score_figure(_score(start_time="2024-05-01T14:30:00+00:00"))
    figure.canvas.draw()
    ticks = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
    assert "14:30:00" in ticks and "14:30:10" in ticks
    assert "2024-05-01" in figure.axes[0].get_xlabel()
    given = score_figure(_score(), start_time=datetime(2020, 1, 2, 23, 59, 55, tzinfo=UTC))
    given.canvas.draw()
    assert "00:00:05" in [tick.get_text() for tick in given.axes[0].get_xticklabels()]


def test_png_bytes_and_an_empty_result() -> None:
    assert plot_png(_score()).startswith(b"\x89PNG")
    empty = _score()
    empty.segments = []
    assert _texts(score_figure(empty)) == []


def test_warnings_head_the_plot_in_full() -> None:
    """A plot shared alone carries the result's doubts: each warning's whole message above the curve."""
    score = _score()
    assert score_figure(score).get_suptitle() == ""
    shift = DomainShift(score=5.2, threshold=3.0, out_of_distribution=True)
    score.warnings = [domain_shift_warning(shift)]
    heading = " ".join(score_figure(score).get_suptitle().split())
    assert heading == f"WARNING: {score.warnings[0].message}" and "5.20" in heading


def test_frame_numbers_follow_the_decoded_frames_of_a_file_with_gaps() -> None:
    """A recorder that dropped frames: 68 decoded frames over 29.6 s at a nominal 15 fps. The top axis counts
    the decoded frames at their own times (frame 67 at the end), not 15 per second (~440)."""
    fps, frames = 15.0, 68
    times = np.linspace(0.0, 29.6, frames)
    scores = np.full(frames, 0.2)
    score = VideoScore(
        video="tree.avi", fps=fps, num_frames=frames, duration_s=29.6 + 1 / fps, threshold=0.5,
        model={"id": "m@0", "name": "m", "sha256": "0" * 64, "threshold": 0.5, "threshold_source": "metadata",
               "device": "cpu"},
        feature_spec={}, num_snippets=len(scores[::16]), snippet_scores=scores[::16], frame_scores=scores,
        frame_snippets=np.arange(frames) // 16, timestamps=times, start_time=None, segments=[],
    )
    figure = score_figure(score)
    top = next(child for child in figure.axes[0].get_children() if type(child).__name__ == "SecondaryAxis")
    low, high = top.get_xlim()
    assert low == pytest.approx(0.0) and 67 <= high <= 68.5
