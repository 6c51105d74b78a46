"""The local engine of a batch job: N killable worker processes (``pipeline.workers``), each with its own Scorer.

On CPU the cores are split between the workers (each sets ``cores // N`` torch threads); on a GPU one process owns
the device. A worker stops a slow video itself at ``timeout_s`` (the Scorer polls between snippet batches); one hung
inside native code is killed ``KILL_GRACE_S`` later, one that dies is replaced, and the video it was on is recorded
as failed (``timeout`` / ``worker_crashed``). Workers die with the coordinating process, even mid-video.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

from lanp_vad.models.errors import ErrorKind, InternalError
from lanp_vad.pipeline.jobs.config import BatchConfig, BatchError
from lanp_vad.pipeline.jobs.outcome import VideoOutcome, score_one
from lanp_vad.pipeline.video.inputs import VideoInput
from lanp_vad.pipeline.workers import Ended, Message, Supervisor, WorkerLink

KILL_GRACE_S = 2.0
"""How long past the timeout a worker may take to stop a video by itself before it is killed."""
POLL_S = 0.2


def _score_worker(link: WorkerLink, model_dir: str, threads: int, config: BatchConfig) -> None:
    """A worker process: load the model once, then score the videos it is handed until told to stop."""
    import torch

    from lanp_vad.pipeline.scoring.scorer import Scorer

    torch.set_num_threads(threads)
    try:
        # decoding in-process: this worker is the isolation, killed by the pool when it hangs or overruns
        scorer = Scorer.from_model_dir(Path(model_dir), device=config.device,
                                       config=config.scoring.model_copy(update={"decode_timeout_s": None}))
    except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the run with it
        link.send(("load-error", f"{type(error).__name__}: {error}"))
        return
    link.send(("ready", None))
    for video in link.tasks():
        link.send(("done", score_one(scorer, video, config)))


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the platform has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class LocalPool:
    """``workers`` scoring processes fed one video at a time; started and loaded on construction."""

    def __init__(self, model_dir: Path, config: BatchConfig, *, workers: int):
        kill_after_s = None if config.timeout_s is None else config.timeout_s + KILL_GRACE_S
        threads = max(1, available_cpus() // workers)
        # not daemonic: a Scorer may start decode processes of its own
        self._pool = Supervisor(_score_worker, (str(model_dir), threads, config), size=workers,
                                deadline_s=kill_after_s, daemon=False, name="lanp-score")
        self._ready: set[int] = set()
        try:
            while not all(worker.key in self._ready for worker in self._pool.workers):
                for event in self._pool.events(POLL_S):
                    self._handle(event)
        except BaseException:
            self.close()
            raise

    def _handle(self, event: Message | Ended) -> VideoOutcome | None:
        """Track the workers' states; the outcome when the event settles a video."""
        if isinstance(event, Ended):
            was_ready = event.worker.key in self._ready
            self._ready.discard(event.worker.key)
            if event.task is None:
                if not was_ready:
                    raise InternalError(f"a scoring worker died while loading the model (exit code "
                                        f"{event.exitcode})", kind=ErrorKind.WORKER_CRASHED)
                return None  # died while idle: its replacement is loading
            kind = ErrorKind.WORKER_CRASHED if event.reason == "crashed" else ErrorKind.TIMEOUT
            return VideoOutcome.failure(event.task, kind, event.describe(), event.seconds)
        kind, payload = event.payload
        if kind == "load-error":
            raise BatchError(f"cannot load the model: {payload}", kind=ErrorKind.INVALID_MODEL)
        if kind == "ready":
            self._ready.add(event.worker.key)
            return None
        event.worker.finished()
        return payload

    def run(self, videos: list[VideoInput], on_start: Callable[[VideoInput], None]) -> Iterator[VideoOutcome]:
        """Score ``videos``; yields outcomes as they finish (order of completion)."""
        pending = deque(videos)
        while pending or self._pool.busy:
            for worker in self._pool.idle_workers():
                if pending and worker.key in self._ready:
                    video = pending.popleft()
                    on_start(video)
                    worker.submit(video)
            for event in self._pool.events(POLL_S):
                outcome = self._handle(event)
                if outcome is not None:
                    yield outcome

    def close(self) -> None:
        self._pool.close()
