"""A PNG of one video's anomaly-score curve, made for an operator to read at a glance.

Scores over time (seconds, or wall-clock time when the video's start is known), frame numbers on the top axis,
the threshold, every event shaded and numbered as in the result document (``segments[].index``, the evidence
file names and the service's ``/events/{n}``), the ground truth as a strip under the curve when given, and the
legend outside the plot so that it never hides the curve. Torch-free: it needs only the result.
"""

from __future__ import annotations

import io
import textwrap
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.scoring.result import VideoScore

GT_STRIP = (-0.14, -0.04)  # y span of the ground-truth strip, under the [0, 1] score range


def _start_time(score: VideoScore, start_time: datetime | None) -> datetime | None:
    if start_time is not None:
        return start_time
    return datetime.fromisoformat(score.start_time) if score.start_time else None


def score_figure(
    score: VideoScore,
    *,
    ground_truth: np.ndarray | None = None,
    start_time: datetime | None = None,
    width_in: float = 11.0,
    height_in: float = 3.6,
    dpi: int = 100,
) -> Figure:
    """The score-curve figure (laid out, not rendered).

    ``ground_truth``: 0/1 per frame (as many as the video's frames), drawn as a red strip under the curve.
    ``start_time``: wall-clock time of frame 0 (default: the result's ``start_time``, from the container); the
    time axis then shows clock times. Uses the Agg canvas directly, not pyplot: no global figure state, so
    service threads can plot concurrently and nothing ever needs a display."""
    figure = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    times = np.asarray(score.timestamps, dtype=np.float64)
    end = max(score.duration_s, float(times[-1]) + 1.0 / score.fps if times.size else 0.0) or 1.0
    axes.plot(times, score.frame_scores, color="tab:blue", linewidth=1.0, label="anomaly score", zorder=3)
    axes.axhline(score.threshold, color="tab:red", linestyle="--", linewidth=1.0,
                 label=f"threshold {score.threshold:.3g}", zorder=2)
    bottom = -0.02
    if ground_truth is not None:
        labels = np.asarray(ground_truth, dtype=bool)
        if labels.shape != (times.size,):
            raise UserError(f"{score.video}: the ground truth has {labels.size} frames, the video {times.size}",
                            kind=ErrorKind.INVALID_GROUND_TRUTH)
        axes.fill_between(times, GT_STRIP[0], GT_STRIP[1], where=labels, step="post", color="tab:red",
                          alpha=0.7, linewidth=0, label="ground truth (abnormal)")
        bottom = GT_STRIP[0] - 0.02
    top = 1.04
    span_from = (-0.02 - bottom) / (top - bottom)  # events shade the score range, not the ground-truth strip
    for number, segment in enumerate(score.segments, 1):
        axes.axvspan(segment.start_s, segment.end_s, ymin=span_from, color="tab:orange", alpha=0.3,
                     label="event" if number == 1 else None, zorder=1)
        axes.text(segment.start_s, 1.0, f"#{number}", ha="left", va="top", fontsize="small", fontweight="bold",
                  color="saddlebrown", zorder=4,
                  bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "alpha": 0.8, "linewidth": 0})
    axes.set_xlim(0.0, end)
    axes.set_ylim(bottom, top)
    axes.set_ylabel("score")
    origin = _start_time(score, start_time)
    if origin is None:
        axes.set_xlabel("time (s)")
    else:
        axes.xaxis.set_major_formatter(FuncFormatter(lambda x, _: (origin + timedelta(seconds=x)).strftime("%H:%M:%S")))
        axes.set_xlabel(f"time ({origin.strftime('%Y-%m-%d %Z').strip()}, from frame 0 at {origin:%H:%M:%S})")
    frames = np.arange(times.size, dtype=np.float64)
    if times.size > 1 and np.all(np.diff(times) > 0):  # frame numbers at the decoded frames' own times
        frames_axis = axes.secondary_xaxis("top", functions=(lambda s: np.interp(s, times, frames),
                                                              lambda f: np.interp(f, frames, times)))
    else:
        fps = score.fps
        frames_axis = axes.secondary_xaxis("top", functions=(lambda s: s * fps, lambda f: f / fps))
    frames_axis.set_xlabel("frame", fontsize="small")
    frames_axis.tick_params(labelsize="small")
    axes.set_title(f"{score.video}: {len(score.segments)} event(s)", fontsize="medium", loc="left")
    if score.warnings:  # a plot shared alone must carry its doubts: the warnings head it, in red
        lines = warning_lines(score)
        figure.set_figheight(height_in + 0.18 * (lines.count("\n") + 1))
        figure.suptitle(lines, x=0.01, ha="left", fontsize="small", color="firebrick")
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)
    figure.tight_layout()
    return figure


def warning_lines(score: VideoScore, width: int = 150) -> str:
    """The result's warnings, wrapped for the plot's title: every message whole, as the document says it."""
    return "\n".join(textwrap.fill(f"WARNING: {warning.message}", width) for warning in score.warnings)


def plot_png(score: VideoScore, *, ground_truth: np.ndarray | None = None, start_time: datetime | None = None) -> bytes:
    """The score curve as PNG bytes (``score_figure`` rendered)."""
    buffer = io.BytesIO()
    score_figure(score, ground_truth=ground_truth, start_time=start_time).savefig(buffer, format="png")
    return buffer.getvalue()


def plot_scores(
    score: VideoScore, path: str | Path, *, ground_truth: np.ndarray | None = None,
    start_time: datetime | None = None,
) -> Path:
    """Write the score-curve PNG to ``path`` and return it (options as for ``plot_png``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(plot_png(score, ground_truth=ground_truth, start_time=start_time))
    return path
