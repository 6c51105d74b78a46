"""A PNG of one video's anomaly-score curve: scores over time, the threshold, and the event segments shaded."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pipeline.scoring.scorer import VideoScore


def plot_png(score: VideoScore, *, width_in: float = 10.0, height_in: float = 3.0, dpi: int = 100) -> bytes:
    """The score curve as PNG bytes (x axis in seconds from the decoder's timestamps).

    Uses the Agg canvas directly, not pyplot: no global figure state, so service threads can plot concurrently
    and nothing ever needs a display."""
    figure = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    times = np.asarray(score.timestamps, dtype=np.float64)
    axes.plot(times, score.frame_scores, color="tab:blue", linewidth=1.0, label="anomaly score")
    axes.axhline(score.threshold, color="tab:red", linestyle="--", linewidth=1.0, label="threshold")
    for index, segment in enumerate(score.segments):
        axes.axvspan(
            segment.start_s,
            segment.end_s,
            color="tab:orange",
            alpha=0.3,
            label="event" if index == 0 else None,
        )
    axes.set_xlim(0.0, max(score.duration_s, float(times[-1]) if times.size else 0.0) or 1.0)
    axes.set_ylim(-0.02, 1.02)
    axes.set_xlabel("time (s)")
    axes.set_ylabel("score")
    axes.set_title(f"{score.video} ({len(score.segments)} event(s), threshold {score.threshold:.3g})")
    axes.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def plot_scores(score: VideoScore, path: str | Path) -> Path:
    """Write the score-curve PNG to ``path`` and return it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(plot_png(score))
    return path
