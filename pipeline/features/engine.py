"""The extraction engine: decoding worker processes feed snippets to one backbone in batches across videos.

``DecodePool`` owns the decoding processes (``pipeline.video.worker``): each decodes its assigned videos snippet by
snippet into its own shared-memory slots and tells the main process over a private pipe. A worker that dies, or
whose heartbeat shows no progress for ``timeout_s``, is killed and replaced; its current video fails with a typed
error and its queued videos go to the fresh worker. The pool starts its workers on the first ``lease()`` and keeps
them until ``close()``, so the scorer's isolated path does not pay a process start per video.

``run_engine`` is the loop between pool and model: the main process, which owns the device, copies each chunk to it
(pinned, non-blocking on CUDA), applies the transforms there and pushes batches of snippets from any video through
the backbone; each finished video goes to ``on_done``, each failed one to ``on_failed``.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lanp_vad.models.errors import ErrorKind
from lanp_vad.pipeline.features.runtime import cpu_cores
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.video import VideoInfo
from lanp_vad.pipeline.video.inputs import VideoInput
from lanp_vad.pipeline.video.snippets import SnippetPlan
from lanp_vad.pipeline.video.worker import (
    DECODER_NICENESS,
    WAITING,
    DecodeSettings,
    decode_worker_main,
    error_from_report,
)
from lanp_vad.pipeline.workers import start_process

Progress = Callable[[int, int], None]
"""Called with (snippets done, snippets in total) as a video is extracted."""


@dataclass(frozen=True)
class ExtractedVideo:
    """One video's features, (T, D) or (T, crops, D) float32, with what the decoder saw and the snippet plan."""

    features: np.ndarray
    info: VideoInfo
    plan: SnippetPlan


class SnippetModel(Protocol):
    """What the engine needs of an extractor: its settings, the transform to the device and the forward pass."""

    spec: FeatureSpec
    decode: DecodeSettings
    batch_size: int
    device: torch.device
    runtime: str

    def clips(self, snippets: torch.Tensor) -> torch.Tensor: ...

    def forward_clips(self, clips: torch.Tensor) -> np.ndarray: ...


@dataclass(eq=False)
class _Worker:
    """A decoding process with its own inbox, pipe and shared slots (so killing it corrupts nothing shared)."""

    process: Any
    inbox: Any
    free_slots: Any
    receiver: Connection
    slots: torch.Tensor  # (slots, slot bytes) uint8, this process's view of the worker's shared memory
    heartbeat: Any
    assigned: deque[VideoInput] = field(default_factory=deque)
    pinned: bool = False


class DecodePool:
    """Decoding worker processes, started on the first ``lease()`` and kept until ``close()``.

    One caller at a time holds the pool; it gets idle workers with empty pipes and all their slots free, and a
    worker it leaves mid-video (a cancel, an error) is replaced when it hands the pool back.
    """

    def __init__(self, settings: DecodeSettings, *, workers: int = 1, slots_per_worker: int = 3, slot_mib: int = 32,
                 snippets_per_chunk: int = 16, pin_for_cuda: bool = False, niceness: int = 0):
        self.context = multiprocessing.get_context("spawn")
        self.settings = settings
        self.size = max(1, workers)
        self.slot_bytes = slot_mib << 20
        self.slots_per_worker = slots_per_worker
        self.snippets_per_chunk = snippets_per_chunk
        self.pin_for_cuda = pin_for_cuda
        self.niceness = niceness
        self.timeout_s: float | None = None
        self.workers: list[_Worker] = []
        self._lock = threading.Lock()
        self._probes = 0

    @classmethod
    def for_archive(cls, settings: DecodeSettings, *, workers: int, snippets_per_chunk: int,
                    device: torch.device) -> DecodePool:
        """The pool of an archive extraction on ``device``: on a CPU its decoders run at lower priority
        (``DECODER_NICENESS``), on CUDA their slots are page-locked."""
        cpu = device.type == "cpu"
        return cls(settings, workers=workers, slots_per_worker=3, snippets_per_chunk=snippets_per_chunk,
                   pin_for_cuda=device.type == "cuda", niceness=DECODER_NICENESS if cpu else 0)

    def start(self) -> None:
        """Start the workers now if they are not running, without waiting for them: a spawned worker spends about
        half a second importing, which the caller can spend building its model meanwhile."""
        with self._lock:
            if not self.workers:
                self.workers = [self._start() for _ in range(self.size)]

    @contextmanager
    def lease(self, timeout_s: float | None = None) -> Iterator[DecodePool]:
        """The pool, its workers started if need be, for this caller alone; stalls longer than ``timeout_s`` fail."""
        self.start()
        with self._lock:
            self.timeout_s = timeout_s
            self._revive()
            try:
                yield self
            finally:
                self._reset()

    def close(self, wait_s: float = 30.0) -> None:
        """Stop the workers (idempotent). A caller still holding the pool after ``wait_s`` (a hung shutdown) loses
        it anyway."""
        acquired = self._lock.acquire(timeout=wait_s)
        try:
            for worker in self.workers:
                self._stop(worker, kill=worker.process.exitcode is None and bool(worker.assigned))
            self.workers = []
        finally:
            if acquired:
                self._lock.release()

    def _start(self) -> _Worker:
        receiver, sender = self.context.Pipe(duplex=False)
        shared = self.context.RawArray("B", self.slots_per_worker * self.slot_bytes)
        slots = torch.from_numpy(np.frombuffer(shared, dtype=np.uint8).reshape(-1, self.slot_bytes))
        inbox, free_slots = self.context.Queue(), self.context.Queue()
        for slot in range(self.slots_per_worker):
            free_slots.put(slot)
        heartbeat = self.context.RawValue("d", WAITING)
        process = self.context.Process(
            target=decode_worker_main,
            args=(self.settings, inbox, free_slots, sender, shared, self.slot_bytes, heartbeat,
                  self.snippets_per_chunk),
            daemon=True,
        )
        start_process(process)
        if self.niceness > 0:  # set from here, so that it holds from the worker's first import on
            own = os.getpriority(os.PRIO_PROCESS, 0)
            os.setpriority(os.PRIO_PROCESS, process.pid, min(19, own + self.niceness))
        sender.close()
        worker = _Worker(process, inbox, free_slots, receiver, slots, heartbeat)
        if self.pin_for_cuda and slots.numel():  # page-lock the shared slots so host-to-device copies are async
            worker.pinned = torch.cuda.cudart().cudaHostRegister(slots.data_ptr(), slots.numel(), 0) == 0
        return worker

    def assign(self, pending: deque[VideoInput], depth: int = 2) -> None:
        """Top every worker up to ``depth`` assigned videos (one decoding, one queued)."""
        for worker in self.workers:
            while pending and len(worker.assigned) < depth:
                video = pending.popleft()
                worker.assigned.append(video)
                worker.inbox.put(("decode", video.video_id, str(video.path)))

    @property
    def busy(self) -> bool:
        return any(worker.assigned for worker in self.workers)

    def messages(self, timeout: float) -> list[tuple[_Worker, tuple]]:
        """Messages ready within ``timeout``; crashed or stalled workers become ``error`` messages and are replaced."""
        ready = wait([worker.receiver for worker in self.workers], timeout)
        received: list[tuple[_Worker, tuple]] = []
        for worker in list(self.workers):
            if worker.receiver in ready:
                try:
                    while worker.receiver.poll():
                        received.append((worker, worker.receiver.recv()))
                except (EOFError, OSError):
                    received.extend(self._replace(worker, ErrorKind.WORKER_CRASHED, "the decoding worker died"))
                    continue
            stalled_for = time.monotonic() - worker.heartbeat.value
            if self.timeout_s is not None and worker.assigned and stalled_for > self.timeout_s:
                received.extend(
                    self._replace(worker, "timeout", f"decoding made no progress for {self.timeout_s:g} s")
                )
        return received

    def finished(self, worker: _Worker, video_id: str) -> None:
        if worker.assigned and worker.assigned[0].video_id == video_id:
            worker.assigned.popleft()

    def release(self, worker: _Worker, slot: int) -> None:
        if worker in self.workers:
            worker.free_slots.put(slot)

    def probe(self, path: Path) -> VideoInfo:
        """``path``'s header, read by the first worker (hold a lease with a timeout); the video's errors re-raised
        typed, a worker killed on the timeout or dead as DecodeTimeoutError / DecoderCrashedError."""
        self._probes += 1
        video = VideoInput(f"probe-{self._probes}", path)
        worker = self.workers[0]
        worker.assigned.append(video)
        worker.inbox.put(("probe", video.video_id, str(path)))
        while True:
            for sender, message in self.messages(min(self.timeout_s or 0.5, 0.5)):
                if message[1] != video.video_id:
                    continue
                self.finished(sender, video.video_id)
                if message[0] == "info":
                    return message[2]
                raise error_from_report(message[2], message[3])

    def _revive(self) -> None:
        """Replace workers that died while idle (their death was no video's fault, so nobody is told)."""
        for index, worker in enumerate(self.workers):
            if not worker.assigned and not worker.process.is_alive():
                self._stop(worker, kill=True)
                self.workers[index] = self._start()

    def _reset(self) -> None:
        """Replace every worker left with videos assigned (a caller that stopped mid-video: cancel or error)."""
        for index, worker in enumerate(self.workers):
            if worker.assigned:
                self._stop(worker, kill=True)
                self.workers[index] = self._start()

    def _replace(self, worker: _Worker, kind: str, reason: str) -> list[tuple[_Worker, tuple]]:
        """Kill ``worker``; its current video fails with ``reason``, its queued ones go to a fresh worker."""
        self._stop(worker, kill=True)
        exit_code = worker.process.exitcode
        current, *queued = worker.assigned or [None]
        fresh = self._start()
        self.workers[self.workers.index(worker)] = fresh
        for video in queued:
            fresh.assigned.append(video)
            fresh.inbox.put(("decode", video.video_id, str(video.path)))
        if current is None:
            return []
        crashed = kind == ErrorKind.WORKER_CRASHED
        detail = f"{current.path}: {reason}" + (f" (exit code {exit_code})" if crashed else "")
        return [(worker, ("error", current.video_id, kind, detail))]

    def _stop(self, worker: _Worker, *, kill: bool) -> None:
        if kill:
            worker.process.kill()
        else:
            worker.inbox.put(None)
        worker.process.join(timeout=5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        if worker.pinned:
            torch.cuda.cudart().cudaHostUnregister(worker.slots.data_ptr())
        worker.receiver.close()
        for channel in (worker.inbox, worker.free_slots):
            channel.cancel_join_thread()
            channel.close()


@dataclass
class _VideoState:
    video: VideoInput
    info: VideoInfo | None = None
    plan: SnippetPlan | None = None
    parts: dict[int, np.ndarray] = field(default_factory=dict)
    in_flight: int = 0
    decoded: bool = False


VideoDone = Callable[[VideoInput, ExtractedVideo], None]
VideoFailed = Callable[[VideoInput, str, str], None]
VideoStarted = Callable[[VideoInput, VideoInfo, SnippetPlan], None]


@contextmanager
def _inference_threads(model: SnippetModel, decoders: int) -> Iterator[None]:
    """Torch eager on a CPU leaves the decoders their cores while the engine runs: its OpenMP threads busy-wait,
    and oversubscribed they slow the forward pass severalfold (the exported runtimes keep every core: their idle
    threads sleep at once)."""
    threads = torch.get_num_threads()
    if model.runtime == "torch" and model.device.type != "cuda":
        torch.set_num_threads(max(1, min(threads, cpu_cores() - decoders)))
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass(eq=False)
class _Engine:
    """One pass of ``run_engine``: the videos' states, the batch being filled and the slots still being copied."""

    model: SnippetModel
    pool: DecodePool
    on_done: VideoDone
    on_failed: VideoFailed
    on_snippets: Callable[[int], None]
    on_start: VideoStarted
    states: dict[str, _VideoState] = field(default_factory=dict)
    batch: list[tuple[str, int, torch.Tensor]] = field(default_factory=list)  # (video id, first snippet, clips)
    releases: list[tuple[Any, _Worker, int]] = field(default_factory=list)  # slots a device copy may still read

    @property
    def cuda(self) -> bool:
        return self.model.device.type == "cuda"

    def run(self, videos: Sequence[VideoInput]) -> None:
        """Decode ``videos`` and push their snippets through the model; every slot goes back to the pool."""
        pending = deque(videos)
        self.states = {video.video_id: _VideoState(video) for video in videos}
        try:
            while pending or self.pool.busy or self.batch:
                self.pool.assign(pending)
                messages = self.pool.messages(0.0 if self.batch else 0.5)
                for worker, message in messages:
                    self.receive(worker, message)
                self.release_copied_slots()
                if not messages:  # the decoders have nothing ready: compute rather than wait
                    self.flush()
        finally:
            self.return_every_slot()

    def receive(self, worker: _Worker, message: tuple) -> None:
        """One message of a decoding worker: a video's header, a chunk of snippets, its end or its error."""
        kind, video_id = message[0], message[1]
        if kind == "start":
            state = self.states[video_id]
            state.info, state.plan = message[2], message[3]
            self.on_start(state.video, message[2], message[3])
        elif kind == "chunk":
            first, slot, shape = message[2:]
            nbytes = int(np.prod(shape))
            self.add_chunk(worker, video_id, first, worker.slots[slot, :nbytes].view(shape), slot)
        elif kind == "inline":
            self.add_chunk(worker, video_id, message[2], torch.from_numpy(message[3]), None)
        elif kind == "done":
            self.pool.finished(worker, video_id)
            self.states[video_id].decoded = True
            self.settle(video_id)
        elif kind == "error":
            self.pool.finished(worker, video_id)
            state = self.states.pop(video_id, None)
            if state is not None:
                self.on_failed(state.video, message[2], message[3])

    def add_chunk(self, worker: _Worker, video_id: str, first: int, snippets: torch.Tensor, slot: int | None) -> None:
        """Transform a chunk onto the device (which copies it out of its slot), free the slot, batch the clips."""
        state = self.states.get(video_id)
        if state is not None:
            state.in_flight += 1
            self.batch.append((video_id, first, self.model.clips(snippets)))
        if slot is not None:
            if self.cuda and worker.pinned:  # the copy may still be running: the slot waits for its event
                event = torch.cuda.Event()
                event.record()
                self.releases.append((event, worker, slot))
            else:
                self.pool.release(worker, slot)
        if sum(clips.shape[0] for _, _, clips in self.batch) >= self.model.batch_size:
            self.flush()

    def flush(self) -> None:
        """The batch through the backbone; each video's features are filed and finished videos settled."""
        if not self.batch:
            return
        parts = [clips for _, _, clips in self.batch]
        if self.cuda:  # one large batch keeps the device busy
            features = self.model.forward_clips(torch.cat(parts))
        else:  # a CPU runtime gains nothing from batches over ~64 frames: spare the copy of every clip
            features = np.concatenate([self.model.forward_clips(part) for part in parts])
        offset = 0
        for video_id, first, clips in self.batch:
            count = clips.shape[0]
            state = self.states.get(video_id)
            if state is not None:
                state.parts[first] = features[offset : offset + count]
                state.in_flight -= 1
            offset += count
            self.on_snippets(count)
        touched = {video_id for video_id, _, _ in self.batch}
        self.batch.clear()
        for video_id in touched:
            self.settle(video_id)

    def settle(self, video_id: str) -> None:
        """Hand a video on once it is decoded and every chunk's features are back (failed if snippets are missing)."""
        state = self.states.get(video_id)
        if state is None or not state.decoded or state.in_flight:
            return
        del self.states[video_id]
        parts = [state.parts[first] for first in sorted(state.parts)]
        assert state.plan is not None and state.info is not None
        features = np.concatenate(parts) if parts else np.zeros((0, self.model.spec.dim), np.float32)
        if features.shape[0] != state.plan.num_snippets:
            self.on_failed(state.video, "corrupt", f"{state.video.path}: decoded {features.shape[0]} of "
                           f"{state.plan.num_snippets} snippets")
            return
        self.on_done(state.video, ExtractedVideo(features, state.info, state.plan))

    def release_copied_slots(self) -> None:
        for release in [entry for entry in self.releases if entry[0].query()]:
            self.releases.remove(release)
            self.pool.release(release[1], release[2])

    def return_every_slot(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()
        for _, worker, slot in self.releases:  # every copy has finished: the pool gets all its slots back
            self.pool.release(worker, slot)
        self.releases.clear()


def run_engine(
    model: SnippetModel,
    videos: Sequence[VideoInput],
    pool: DecodePool,
    *,
    on_done: VideoDone,
    on_failed: VideoFailed,
    on_snippets: Callable[[int], None] = lambda count: None,
    on_start: VideoStarted = lambda video, info, plan: None,
) -> None:
    """Decode ``videos`` in the leased ``pool`` and push their snippets through ``model`` in cross-video batches.

    Every slot is handed back to the pool at the end, whatever happened."""
    with _inference_threads(model, len(pool.workers)):
        _Engine(model, pool, on_done, on_failed, on_snippets, on_start).run(videos)


def extract_in_worker(model: SnippetModel, path: Path, pool: DecodePool, progress: Progress | None) -> ExtractedVideo:
    """One video's features with decoding in the leased ``pool``'s killable worker; its typed error re-raised."""
    results: list[ExtractedVideo] = []
    failures: list[tuple[str, str]] = []
    done, total = 0, 0

    def started(video: VideoInput, info: VideoInfo, plan: SnippetPlan) -> None:
        nonlocal total
        total = plan.num_snippets

    def count(snippets: int) -> None:
        nonlocal done
        done += snippets
        if progress is not None:
            progress(done, total)

    run_engine(
        model,
        [VideoInput(path.stem, path, path.is_dir())],
        pool,
        on_done=lambda video, extracted: results.append(extracted),
        on_failed=lambda video, kind, message: failures.append((kind, message)),
        on_snippets=count,
        on_start=started,
    )
    if failures:
        kind, message = failures[0]
        raise error_from_report(kind, message)
    return results[0]
