"""Batch scoring of a video archive: resumable, crash-safe, one JSON per video plus tables across videos.

``run_batch`` scores every video not already finished in the output folder (``pipeline.jobs.outputs`` describes
it) and rebuilds the tables. A rerun skips the finished videos and (with ``retry_failed``) retries the failed ones.
Engines: ``local`` (``pipeline.jobs.local``: killable worker processes) and ``ray`` (``pipeline.jobs.ray_engine``:
Ray Data actors); both feed ``VideoOutcome``s to the same writer, so both give the same files.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from lanp_vad.models.errors import ErrorKind
from lanp_vad.pipeline.jobs.config import BatchConfig, BatchError
from lanp_vad.pipeline.jobs.outcome import VideoOutcome
from lanp_vad.pipeline.jobs.outputs import BatchOutputs, model_identity
from lanp_vad.pipeline.training.model_dir import MODEL_FILE
from lanp_vad.pipeline.video.inputs import VideoInput

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    """Counts of one run; ``failed`` lists the ids of every video that is failed after it (this run or before)."""

    out_dir: Path
    total: int
    scored: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    snippets: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


def run_batch(videos: list[VideoInput], model_dir: str | Path, out_dir: str | Path, config: BatchConfig, *,
              progress: bool = True) -> BatchReport:
    """Score every video not already finished in ``out_dir`` with ``config`` and rebuild the tables."""
    model_dir = Path(model_dir)
    if not (model_dir / MODEL_FILE).exists():
        raise BatchError(f"{model_dir} is not a model directory (no {MODEL_FILE})", kind=ErrorKind.INVALID_MODEL)
    from lanp_vad.pipeline.device import resolve_device

    device = str(resolve_device(config.device))
    if device.startswith("cuda") and config.workers > 1 and config.engine == "local":
        log.info("one process owns the GPU: --workers %d ignored on %s", config.workers, device)
        config = config.model_copy(update={"workers": 1})
    config = config.model_copy(update={"device": device})  # run.json records what the run used
    outputs = BatchOutputs(Path(out_dir), model=model_identity(model_dir), config=config)
    outputs.check_paths(videos)
    if outputs.scoring_changed:
        log.info("new event settings: recomputing the events of %d finished video(s) from their JSON",
                 outputs.resegment())
    outputs.save_run()
    todo = [
        video for video in videos
        if not outputs.is_done(video.video_id) and (config.retry_failed or not outputs.is_failed(video.video_id))
    ]
    report = BatchReport(Path(out_dir), total=len(videos), skipped=len(videos) - len(todo))
    if report.skipped:
        log.info("%d of %d videos already done (or failed: retry with --retry-failed)", report.skipped, len(videos))
    run_id = uuid.uuid4().hex[:12]
    start = time.perf_counter()
    if todo:
        outcomes = _outcomes(todo, model_dir, outputs, run_id, config)
        _consume(outcomes, outputs, run_id, report, total=len(todo), progress=progress)
    outputs.rebuild_tables()
    report.seconds = time.perf_counter() - start
    report.failed = sorted(video.video_id for video in videos if outputs.is_failed(video.video_id))
    return report


def _outcomes(todo: list[VideoInput], model_dir: Path, outputs: BatchOutputs, run_id: str,
              config: BatchConfig) -> Iterator[VideoOutcome]:
    workers = min(config.workers, len(todo))
    if config.engine == "ray":
        from lanp_vad.pipeline.jobs.ray_engine import ray_score_outcomes

        yield from ray_score_outcomes(todo, model_dir, config, workers=workers)
        return
    from lanp_vad.pipeline.jobs.local import LocalPool

    pool = LocalPool(model_dir, config, workers=workers)
    try:
        yield from pool.run(todo, lambda video: outputs.started(video, run_id))
    finally:
        pool.close()


def _consume(outcomes: Iterable[VideoOutcome], outputs: BatchOutputs, run_id: str, report: BatchReport, *,
             total: int, progress: bool) -> None:
    """Record each outcome as it arrives, with a progress bar of videos, snippets/s and ETA."""
    from lanp_vad.pipeline.progress import progress_bar

    start = time.perf_counter()
    with progress_bar(total=total, desc="score", unit="video", enabled=progress) as bar:
        for outcome in outcomes:
            outputs.record(outcome, run_id)
            if outcome.status == "ok":
                report.scored += 1
                report.snippets += outcome.num_snippets
            else:
                log.warning("%s failed (%s): %s", outcome.video_id, outcome.error_kind, outcome.error)
                report.failed.append(outcome.video_id)
            elapsed = max(time.perf_counter() - start, 1e-9)
            bar.set_postfix(snippets_per_s=f"{report.snippets / elapsed:.1f}", failed=len(report.failed))
            bar.update(1)
