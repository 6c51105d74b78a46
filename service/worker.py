"""The one inference worker: a thread that owns the model and the device, fed by a bounded queue.

Every video (a synchronous ``POST /score`` or a job) goes through this queue, so concurrent requests never run
two models on the GPU or oversubscribe the CPU; a full queue is refused at once (503 + Retry-After by the
routes) instead of piling up memory. Jobs re-queued after a restart bypass the bound (they were accepted before).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pipeline.files import atomic_write_bytes
from pipeline.scoring.scorer import ScoringCancelled, VideoScore
from service.jobs import CANCELED, COMPLETED, FAILED, JobStore
from service.metrics import ServiceMetrics

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
PROGRESS_INTERVAL_S = 0.5


class QueueFullError(Exception):
    """The worker's queue holds ``queue_size`` videos already."""


class ScorerLike(Protocol):
    def score_video(self, source: Any, **options: Any) -> VideoScore: ...


def error_kind(error: BaseException) -> str:
    """The short label of an error: a VideoError's ``kind``, else ``internal``."""
    kind = getattr(error, "kind", None)
    return kind if isinstance(kind, str) else "internal"


def is_video_error(error: BaseException) -> bool:
    """Errors caused by the video itself (decode, probe, timeout, spec/shape problems), not by the server."""
    from pipeline.video import VideoError

    return isinstance(error, VideoError)


@dataclass
class ScoreRequest:
    """A synchronous request: the route awaits ``future``; the worker removes ``path`` when done."""

    path: Path
    name: str
    threshold: float | None
    cancel: threading.Event = field(default_factory=threading.Event)
    future: Future = field(default_factory=Future)


@dataclass
class JobTask:
    job_id: str


def result_path(jobs_dir: Path, job_id: str) -> Path:
    return jobs_dir / job_id / RESULT_FILE


class InferenceWorker:
    """Runs queued ``ScoreRequest`` and ``JobTask`` items one at a time on the scorer."""

    def __init__(
        self,
        scorer: ScorerLike,
        store: JobStore,
        metrics: ServiceMetrics,
        *,
        jobs_dir: Path,
        queue_size: int,
    ):
        self.scorer = scorer
        self.store = store
        self.metrics = metrics
        self.jobs_dir = jobs_dir
        self.queue_size = queue_size
        self._queue: deque[ScoreRequest | JobTask] = deque()
        self._condition = threading.Condition()
        self._running_jobs: dict[str, threading.Event] = {}
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lanp-inference", daemon=True)

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop: the running video is interrupted (a job goes back to pending), queued synchronous requests
        fail, queued jobs stay pending for the next start."""
        with self._condition:
            self._stopping = True
            for event in self._running_jobs.values():
                event.set()
            self._condition.notify_all()
        self._thread.join(timeout_s)
        for item in self._queue:
            if isinstance(item, ScoreRequest):
                item.path.unlink(missing_ok=True)
                if not item.future.done():
                    item.future.set_exception(RuntimeError("the server is shutting down"))
        self._queue.clear()

    def _put(self, item: ScoreRequest | JobTask, *, bounded: bool) -> None:
        with self._condition:
            if self._stopping:
                raise QueueFullError("the server is shutting down")
            if bounded and len(self._queue) >= self.queue_size:
                raise QueueFullError(f"{len(self._queue)} videos are already waiting")
            self._queue.append(item)
            self.metrics.queue_depth.set(len(self._queue))
            self._condition.notify()

    def submit_score(self, path: Path, name: str, threshold: float | None) -> ScoreRequest:
        """Queue a synchronous scoring; QueueFullError when full (the caller then still owns ``path``)."""
        request = ScoreRequest(path, name, threshold)
        self._put(request, bounded=True)
        return request

    def submit_job(self, job_id: str, *, bounded: bool = True) -> None:
        self._put(JobTask(job_id), bounded=bounded)

    def cancel_job(self, job_id: str) -> bool:
        """Cancel a job: a running one is stopped at the next snippet batch, a pending one at once.
        False when the job had already ended."""
        with self._condition:
            event = self._running_jobs.get(job_id)
            if event is not None:
                event.set()
                return True
            job = self.store.get(job_id)
            if job is None or not self.store.finish(job_id, CANCELED, error_kind="canceled", error="canceled"):
                return False
        self._remove_input(job.source_kind, Path(job.input_path))
        return True

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._queue and not self._stopping:
                    self._condition.wait()
                if self._stopping:
                    return
                item = self._queue.popleft()
                self.metrics.queue_depth.set(len(self._queue))
            try:
                if isinstance(item, ScoreRequest):
                    self._score_request(item)
                else:
                    self._run_job(item.job_id)
            except Exception:  # the worker must outlive any single video
                log.exception("inference worker: unexpected error")

    def _score(self, path: Path, **options: Any) -> VideoScore:
        started = time.perf_counter()
        score = self.scorer.score_video(path, **options)
        self.metrics.scoring_seconds.observe(time.perf_counter() - started)
        self.metrics.videos_scored.inc()
        self.metrics.snippets_scored.inc(int(score.snippet_scores.size))
        self.metrics.frames_scored.inc(score.num_frames)
        return score

    def _score_request(self, request: ScoreRequest) -> None:
        try:
            if request.cancel.is_set() or not request.future.set_running_or_notify_cancel():
                return
            score = self._score(
                request.path, name=request.name, threshold=request.threshold, cancel=request.cancel.is_set
            )
            request.future.set_result(score)
        except BaseException as error:  # handed to the waiting route, which maps it to a status
            if not request.future.done():
                request.future.set_exception(error)
        finally:
            request.path.unlink(missing_ok=True)

    def _run_job(self, job_id: str) -> None:
        event = threading.Event()
        with self._condition:
            job = self.store.get(job_id)
            if job is None or not self.store.start(job_id):
                return  # canceled (or deleted) while waiting
            self._running_jobs[job_id] = event
        last_report = [0.0]

        def report(fraction: float) -> None:
            now = time.monotonic()
            if now - last_report[0] >= PROGRESS_INTERVAL_S or fraction >= 1.0:
                last_report[0] = now
                self.store.set_progress(job_id, round(fraction, 4))

        try:
            score = self._score(
                Path(job.input_path), name=job.video, threshold=job.threshold, progress=report, cancel=event.is_set
            )
            atomic_write_bytes(result_path(self.jobs_dir, job_id), json.dumps(score.to_dict()).encode())
            self.store.finish(job_id, COMPLETED)
        except ScoringCancelled:
            if self._stopping:  # a shutdown, not the client: the next start runs it again
                self.store.requeue(job_id)
            else:
                self.store.finish(job_id, CANCELED, error_kind="canceled", error="canceled")
        except Exception as error:
            kind = error_kind(error)
            if kind == "internal" and not is_video_error(error):
                log.exception("job %s failed", job_id)
            self.metrics.errors.labels(kind=kind).inc()
            self.store.finish(job_id, FAILED, error_kind=kind, error=f"{type(error).__name__}: {error}")
        finally:
            with self._condition:
                self._running_jobs.pop(job_id, None)
            ended = self.store.get(job_id)
            if ended is None or (ended.is_terminal and ended.status != COMPLETED):  # a result keeps its video
                self._remove_input(job.source_kind, Path(job.input_path))

    @staticmethod
    def _remove_input(source_kind: str, path: Path) -> None:
        if source_kind == "upload":
            path.unlink(missing_ok=True)
