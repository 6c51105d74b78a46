"""The one inference worker: a thread that scores uploads and jobs one at a time, fed by a bounded queue.

Every video (a synchronous ``POST /score`` or a job) goes through this queue, and each of its snippet batches
runs on the device's turn (``service.scheduler``), which the worker shares fairly with the live streams: it takes
a turn per batch, so a long job never holds the streams up for its whole duration, and the streams cannot starve
it. A full queue is refused at once (503 + Retry-After by the routes) instead of piling up
memory. Jobs re-queued after a restart bypass the bound (they were accepted before).
Failures leave the worker as ``ServiceError`` s (``service.problems.from_exception``) whose messages name the
client's file, never the server's path. Uploaded files are handed back to the ``UploadGate`` once scored (a
completed job keeps its video, for the review page, until the job expires).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from lanp_vad.models.errors import ErrorKind, LANPError
from lanp_vad.pipeline.files import atomic_write_bytes
from lanp_vad.pipeline.scoring.result import ScoringCancelled, VideoScore
from lanp_vad.service.jobs import CANCELED, COMPLETED, FAILED, JobStore
from lanp_vad.service.metrics import ServiceMetrics
from lanp_vad.service.problems import HTTPErrorKind, ServiceError, from_exception
from lanp_vad.service.scheduler import REQUESTS, DeviceScheduler
from lanp_vad.service.uploads import UploadGate

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"


class QueueFullError(LANPError):
    """The worker's queue holds ``queue_size`` videos already (or the worker is stopping); routes answer 503."""

    kind = HTTPErrorKind.QUEUE_FULL


class ScorerLike(Protocol):
    def score_video(self, source: Any, **options: Any) -> VideoScore: ...


@dataclass(frozen=True)
class SnippetBudget:
    """The most snippets a ``POST /score`` may decode, and the setting (``max_sync_*``) that makes it the tightest."""

    snippets: int
    limit: str


@dataclass
class ScoreRequest:
    """A synchronous request: the route awaits ``future`` and sets ``cancel`` when its client goes away; the
    worker discards ``path`` when done."""

    path: Path
    name: str
    threshold: float | None
    events: dict[str, float]
    budget: SnippetBudget | None = None
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
        uploads: UploadGate,
        on_job_end: Callable[[str], None] | None = None,
        scheduler: DeviceScheduler | None = None,
    ):
        self.scorer = scorer
        self.device = (scheduler or DeviceScheduler()).client(REQUESTS, "inference worker")
        self.store = store
        self.metrics = metrics
        self.jobs_dir = jobs_dir
        self.queue_size = queue_size
        self.uploads = uploads
        self.on_job_end = on_job_end
        self._queue: deque[ScoreRequest | JobTask] = deque()
        self._condition = threading.Condition()
        self._running_jobs: dict[str, threading.Event] = {}
        self._running_request: ScoreRequest | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="lanp-inference", daemon=True)

    @property
    def depth(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Stop: the running video is interrupted at its next snippet batch (a job goes back to pending), queued
        synchronous requests fail (503), queued jobs stay pending for the next start. False when the running video
        did not stop within ``timeout_s`` (closing the scorer then kills its decoding)."""
        with self._condition:
            self._stopping = True
            for event in self._running_jobs.values():
                event.set()
            if self._running_request is not None:
                self._running_request.cancel.set()
            self._condition.notify_all()
        self._thread.join(timeout_s)
        shutting_down = ServiceError(
            503, ErrorKind.CANCELED, "the server is shutting down", headers={"Retry-After": "5"}
        )
        for item in self._queue:
            if isinstance(item, ScoreRequest):
                self.uploads.discard(item.path)
                if not item.future.done():
                    item.future.set_exception(shutting_down)
        self._queue.clear()
        return not self._thread.is_alive()

    def _put(self, item: ScoreRequest | JobTask, *, bounded: bool) -> None:
        with self._condition:
            if self._stopping:
                raise QueueFullError("the server is shutting down")
            if bounded and len(self._queue) >= self.queue_size:
                raise QueueFullError(f"{len(self._queue)} videos are already waiting")
            self._queue.append(item)
            self.metrics.queue_depth.set(len(self._queue))
            self._condition.notify()

    def submit_score(
        self, path: Path, name: str, threshold: float | None, events: dict[str, float] | None = None,
        budget: SnippetBudget | None = None,
    ) -> ScoreRequest:
        """Queue a synchronous scoring (``events``: event rules that override the model's; ``budget``: the most
        snippets it may decode); QueueFullError when full (the caller then still owns ``path``)."""
        request = ScoreRequest(path, name, threshold, events or {}, budget)
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
            if job is None or not self.store.finish(job_id, CANCELED, error_kind=ErrorKind.CANCELED, error="canceled"):
                return False
        self._job_ended(job.id, job.source_kind, Path(job.input_path))
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

    def _config(self, events: dict[str, float]) -> Any:
        """The scorer's ScoringConfig with a request's event rules applied (None: the scorer's own)."""
        return self.scorer.config.model_copy(update=events) if events else None

    def _score(self, path: Path, *, cancel: Callable[[], bool], **options: Any) -> VideoScore:
        """Score ``path``, each backbone batch on the device's turn (the extractor's gate)."""
        with self.device.bound(cancel):
            started = time.perf_counter()
            score = self.scorer.score_video(path, cancel=cancel, **options)
        self.metrics.scoring_seconds.observe(time.perf_counter() - started)
        self.metrics.videos_scored.inc()
        self.metrics.snippets_scored.inc(int(score.snippet_scores.size))
        self.metrics.frames_scored.inc(score.num_frames)
        return score

    def _score_request(self, request: ScoreRequest) -> None:
        try:
            if request.cancel.is_set() or not request.future.set_running_or_notify_cancel():
                return
            with self._condition:
                self._running_request = request
            score = self._score(
                request.path, name=request.name, threshold=request.threshold, cancel=request.cancel.is_set,
                config=self._config(request.events),
                **({"max_snippets": request.budget.snippets, "limit": request.budget.limit} if request.budget else {}),
            )
            request.future.set_result(score)
        except BaseException as error:  # handed to the waiting route as the answer it deserves
            if not request.future.done():
                request.future.set_exception(self._public_error(error, request.path, repr(request.name)))
        finally:
            with self._condition:
                self._running_request = None
            self.uploads.discard(request.path)

    def _public_error(self, error: BaseException, path: Path, shown: str) -> ServiceError:
        public = from_exception(error, path=path, shown=shown)
        if public.status >= 500 and not isinstance(error, ScoringCancelled):
            log.error("scoring %s failed", shown, exc_info=error)
        return public

    def _run_job(self, job_id: str) -> None:
        event = threading.Event()
        with self._condition:
            job = self.store.get(job_id)
            if job is None or not self.store.start(job_id):
                return  # canceled (or deleted) while waiting
            self._running_jobs[job_id] = event

        def report(fraction: float) -> None:  # called once per snippet batch
            self.store.set_progress(job_id, round(fraction, 4))

        try:
            score = self._score(
                Path(job.input_path), name=job.video, threshold=job.threshold, progress=report, cancel=event.is_set,
                config=self._config(job.events),
            )
            atomic_write_bytes(result_path(self.jobs_dir, job_id), score.model_dump_json().encode())
            self.store.finish(job_id, COMPLETED)
        except ScoringCancelled:
            if self._stopping:  # a shutdown, not the client: the next start runs it again
                self.store.requeue(job_id)
            else:
                self.store.finish(job_id, CANCELED, error_kind=ErrorKind.CANCELED, error="canceled")
        except Exception as error:
            public = self._public_error(error, Path(job.input_path), repr(job.video))
            self.metrics.errors.labels(kind=public.kind).inc()
            if public.kind == ErrorKind.DISK_FULL:
                self.uploads.disk.release_reserve()  # room for the job store to record the failure
            self.store.finish(job_id, FAILED, error_kind=public.kind, error=public.message)
        finally:
            with self._condition:
                self._running_jobs.pop(job_id, None)
            ended = self.store.get(job_id)
            if ended is None or ended.is_terminal:
                self._job_ended(job_id, job.source_kind, Path(job.input_path), keep_input=ended is not None
                                and ended.status == COMPLETED)

    def _job_ended(self, job_id: str, source_kind: str, path: Path, *, keep_input: bool = False) -> None:
        """A job ended: its upload is removed, or kept (a completed job's video, for the review page) and no longer
        counted as in flight but as kept; its webhook is queued."""
        if source_kind == "upload":
            (self.uploads.keep if keep_input else self.uploads.discard)(path)
        if self.on_job_end is not None:
            self.on_job_end(job_id)
