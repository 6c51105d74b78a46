"""What became of one video of a batch, and the function every engine uses to get it (``score_one``).

Failures carry an ``error_kind`` from the one vocabulary (``models.errors.ErrorKind``): the video's own errors keep
their kind (``corrupt``, ``no_video_stream``, ...), a video stopped at the timeout is ``timeout``, and an error
that is nobody's input (a bug) is ``internal``; the engines add ``worker_crashed`` when a worker dies under a video.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any, Literal

from lanp_vad.models.errors import ErrorKind, error_kind
from lanp_vad.pipeline.jobs.config import BatchConfig
from lanp_vad.pipeline.video.inputs import VideoInput

log = logging.getLogger(__name__)


@dataclass
class VideoOutcome:
    """What became of one video: its ``POST /score`` document, or why it failed."""

    video_id: str
    path: str
    status: Literal["ok", "failed"]
    document: dict[str, Any] | None = None
    plot_png: bytes | None = None
    error_kind: str | None = None
    error: str | None = None
    num_snippets: int = 0
    seconds: float = 0.0

    @classmethod
    def failure(cls, video: VideoInput, kind: ErrorKind, message: str, seconds: float = 0.0) -> VideoOutcome:
        return cls(video.video_id, str(video.path), "failed", error_kind=str(kind), error=message, seconds=seconds)


def score_one(scorer: Any, video: VideoInput, config: BatchConfig) -> VideoOutcome:
    """Score one video with a loaded Scorer, turning every error into a recorded failure (the run goes on).

    ``config.timeout_s`` stops the scoring cooperatively (the Scorer polls ``cancel`` between snippet batches); a
    decoder hung in native code never returns to poll it, so the local pool also kills a worker that overruns.
    """
    from lanp_vad.pipeline.scoring.result import ScoringCancelled

    start = time.perf_counter()
    deadline = None if config.timeout_s is None else time.monotonic() + config.timeout_s
    try:
        score = scorer.score_video(video.path, config=config.scoring,
                                   cancel=None if deadline is None else lambda: time.monotonic() > deadline)
        document = score.model_dump(mode="json")
        plot = None
        if config.plots:
            from lanp_vad.pipeline.scoring.plot import plot_png

            plot = plot_png(score)
    except MemoryError:
        return VideoOutcome.failure(video, ErrorKind.OUT_OF_MEMORY, "ran out of memory", time.perf_counter() - start)
    except ScoringCancelled:
        return VideoOutcome.failure(video, ErrorKind.TIMEOUT, f"no result after {config.timeout_s:g} s: stopped",
                                    time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - one bad video must not stop an archive
        log.debug("%s failed:\n%s", video.video_id, traceback.format_exc())
        return VideoOutcome.failure(video, error_kind(error), str(error) or type(error).__name__,
                                    time.perf_counter() - start)
    return VideoOutcome(
        video.video_id, str(video.path), "ok", document=document, plot_png=plot,
        num_snippets=len(document.get("snippet_scores", ())), seconds=time.perf_counter() - start,
    )
