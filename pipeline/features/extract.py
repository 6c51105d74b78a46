"""Feature extraction: videos -> per-snippet backbone features, for one video (the scorer) or a whole archive.

``FeatureExtractor`` owns the backbone on its device and describes its output with a ``FeatureSpec``.
``extract_video`` streams one video's snippets through the backbone in batches (memory independent of length);
with a timeout it decodes in a killable worker process that the extractor starts once and keeps (``close()``).
``extract_archive`` is the engine of ``lanp extract``: worker processes decode videos snippet by snippet into
shared-memory slots; the main process, which owns the device, copies each chunk to it (pinned, non-blocking on
CUDA), applies the transforms there, batches snippets across videos through the backbone (bf16 autocast on CUDA,
batch halved on out-of-memory) and writes each finished video to a ``FeatureStore``. The store's manifest makes
runs resumable (finished videos are skipped); a video that fails to decode, or whose worker stops making progress
for ``timeout_s`` (the worker is killed and replaced), is recorded as failed and the run goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, BinaryIO, Literal

import numpy as np
import torch

from models.errors import ErrorKind
from pipeline.features.featureset import FeatureStore
from pipeline.features.spec import FeatureSpec
from pipeline.features.transforms import SnippetTransform
from pipeline.features.weights import create_backbone
from pipeline.video import VideoInfo
from pipeline.video.inputs import VideoInput, expand_inputs
from pipeline.video.snippets import SnippetPlan
from pipeline.video.worker import (
    WAITING,
    DecodeSettings,
    decode_worker_main,
    error_from_report,
    snippet_frame_offsets,
)
from pipeline.workers import start_process

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (snippets done, snippets in total) as a video is extracted."""


DEFAULT_DECODE_SHORT_SIDE = 1080
"""By default frames are scaled while decoding so their short side is at most this (or twice the resize, if that
is more): an 8K source never holds full-size frames, while every source up to 1080 lines (Ped2, the CCTV clips,
720p, 1080p) decodes at full size exactly as before. Scaling does change features: measured on a Ped2 clip
upscaled x4 / x6, decode-time scaling to 2x / 4x the resize moved EfficientNet-Lite0 features by 6.3 % / 4.4 %
relative L2, where re-encoding the clip at CRF 18 moved them by 1.9 % / 1.1 % (bench/decode_size.py), so the
bound is kept high and recorded in the spec."""


class ExtractionError(RuntimeError):
    """The extraction itself broke (not one bad video): e.g. out of device memory even for one snippet."""


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; ``cuda`` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but no CUDA GPU is available")
    return resolved


@dataclass(frozen=True)
class ExtractedVideo:
    """One video's features, (T, D) or (T, crops, D) float32, with what the decoder saw and the snippet plan."""

    features: np.ndarray
    info: VideoInfo
    plan: SnippetPlan


class FeatureExtractor:
    """A backbone on a device plus the decoding and transform settings that, together, define a ``FeatureSpec``."""

    def __init__(
        self,
        backbone: str = "efficientnet_lite0",
        *,
        weights: str = "pretrained",
        allow_pickle: bool = False,
        crops: Literal[1, 10] = 1,
        device: str = "auto",
        batch_size: int = 16,
        frames_per_snippet: int | None = None,
        crop_size: int | None = None,
        resize: int | None = None,
        snippet_length: int = 16,
        stride: int = 16,
        pad_last: bool = True,
        target_fps: float | None = None,
        max_side: int | None = None,
        decode_short_side: int | None | Literal["auto"] = "auto",
        backend: Literal["auto", "decord", "pyav"] = "pyav",
    ):
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        loaded = create_backbone(backbone, weights=weights, allow_pickle=allow_pickle)
        info = loaded.info
        self.device = resolve_device(device)
        self.backbone = loaded.backbone.to(self.device)
        self.batch_size = batch_size
        crop = crop_size or info.crop_size
        # Without an explicit resize keep the backbone's resize/crop ratio (e.g. 256/224).
        short_side = resize or (info.resize if crop_size is None else round(crop * info.resize / info.crop_size))
        self.transform = SnippetTransform(short_side, crop, crops, info.mean, info.std)
        if decode_short_side == "auto":  # large sources never sit in memory at full size (the spec records it)
            decode_short_side = max(DEFAULT_DECODE_SHORT_SIDE, 2 * short_side)
        self.decode = DecodeSettings(
            snippet_length=snippet_length,
            stride=stride,
            pad_last=pad_last,
            frames_per_snippet=min(frames_per_snippet or info.input_frames, snippet_length),
            target_fps=target_fps,
            max_side=max_side,
            max_short_side=decode_short_side,
            backend=backend,
        )
        snippet_frame_offsets(snippet_length, self.decode.frames_per_snippet)  # validates the count
        self.spec = FeatureSpec(
            backbone=info.name,
            weights=loaded.weights,
            dim=info.dim,
            snippet_length=snippet_length,
            stride=stride,
            frames_per_snippet=self.decode.frames_per_snippet,
            pad_last=pad_last,
            resize=short_side,
            crop_size=crop,
            crops=crops,
            mean=info.mean,
            std=info.std,
            layer=info.layer,
            fps=target_fps,
            max_side=max_side,
            decode_short_side=decode_short_side,
        )
        # The isolated path's processes, started on first use and kept: one decodes, one reads headers (a probe
        # must not wait behind a long decode). Stopped by close(), garbage collection or interpreter exit.
        self._decoder = _PersistentPool(
            self.decode, slots=3, snippets_per_chunk=batch_size, pin_for_cuda=self.device.type == "cuda"
        )
        self._prober = _PersistentPool(self.decode, slots=0, snippets_per_chunk=1, pin_for_cuda=False)
        self._close = weakref.finalize(self, _close_pools, self._decoder, self._prober)

    def start_workers(self) -> None:
        """Start the isolated path's decode and probe processes now rather than on the first video."""
        for pool in (self._decoder, self._prober):
            with pool.lease():
                pass

    def close(self) -> None:
        """Stop the decode and probe processes (idempotent; a later isolated call starts fresh ones)."""
        _close_pools(self._decoder, self._prober)

    def __enter__(self) -> FeatureExtractor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def probe(self, source: str | Path, *, timeout_s: float | None = None) -> VideoInfo:
        """The video's header as extraction will see it (frame count, fps, size), without decoding frames.

        With ``timeout_s`` it is read by the persistent probe process, killed and replaced when it gives no answer
        in that long (DecodeTimeoutError) or dies (DecoderCrashedError); otherwise in this process."""
        if timeout_s is None:
            with self.decode.open_reader(source) as reader:
                return reader.info
        with self._prober.lease() as pool:
            return pool.probe(Path(source), timeout_s)

    def clips(self, snippets: torch.Tensor) -> torch.Tensor:
        """uint8 snippets (any device) -> normalised clips (N, crops, 3, L, S, S) on the extractor's device."""
        return self.transform(snippets.to(self.device, non_blocking=True))

    @torch.inference_mode()
    def forward_clips(self, clips: torch.Tensor) -> np.ndarray:
        """Features (N, D) or (N, crops, D) of transformed clips, in batches that shrink on CUDA out-of-memory."""
        count, crops = clips.shape[:2]
        flat = clips.flatten(0, 1)
        outputs = []
        start = 0
        while start < flat.shape[0]:
            size = max(1, self.batch_size * crops)
            try:
                outputs.append(self._forward(flat[start : start + size]))
                start += size
            except torch.cuda.OutOfMemoryError as error:
                if size <= 1:
                    raise ExtractionError("out of device memory for a single snippet; lower --size") from error
                torch.cuda.empty_cache()
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("CUDA out of memory: batch size lowered to %d snippets", self.batch_size)
        features = torch.cat(outputs).float().cpu().numpy().reshape(count, crops, -1)
        return features[:, 0] if crops == 1 else features

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.backbone(clips)
        return self.backbone(clips)

    def features(self, snippets: torch.Tensor | np.ndarray) -> np.ndarray:
        """uint8 snippets (N, L, H, W, 3) -> features (N, D) or (N, crops, D)."""
        tensor = torch.from_numpy(snippets) if isinstance(snippets, np.ndarray) else snippets
        return self.forward_clips(self.clips(tensor))

    def extract_video(
        self, source: str | Path | BinaryIO, *, timeout_s: float | None = None, progress: Progress | None = None
    ) -> ExtractedVideo:
        """One video's features. With ``timeout_s`` (paths only) decoding runs in the extractor's persistent worker
        process, killed (and replaced for the next video) when it stops making progress for that long
        (DecodeTimeoutError) or dies (DecoderCrashedError); otherwise decoding runs in this process."""
        if timeout_s is not None and isinstance(source, str | Path):
            with self._decoder.lease() as pool:
                return _extract_in_worker(self, Path(source), timeout_s, progress, pool)
        reader, plan = self.decode.open(source)
        with reader:
            parts = []
            for first, chunk in self.decode.iter_chunks(reader, plan, self.batch_size):
                parts.append(self.features(chunk))
                if progress is not None:
                    progress(first + chunk.shape[0], plan.num_snippets)
            return ExtractedVideo(np.concatenate(parts), reader.info, plan)


# ----------------------------------------------------------------------------------------------------------------
# Worker processes (``pipeline.video.worker``): decode into shared-memory slots, tell the main process over a
# private pipe.


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


class _DecodePool:
    """Worker processes that decode assigned videos; replaces a worker that crashes or stalls."""

    def __init__(self, settings: DecodeSettings, *, workers: int, timeout_s: float | None, slot_mib: int,
                 slots_per_worker: int, snippets_per_chunk: int, pin_for_cuda: bool):
        self.context = multiprocessing.get_context("spawn")
        self.settings = settings
        self.timeout_s = timeout_s
        self.slot_bytes = slot_mib << 20
        self.slots_per_worker = slots_per_worker
        self.snippets_per_chunk = snippets_per_chunk
        self.pin_for_cuda = pin_for_cuda
        self.workers = [self._start() for _ in range(max(1, workers))]
        self._probes = 0

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

    def probe(self, path: Path, timeout_s: float) -> VideoInfo:
        """``path``'s header, read by the first worker; killed and replaced if it gives no answer in ``timeout_s``
        (DecodeTimeoutError), replaced if it dies (DecoderCrashedError); the video's own errors re-raised typed."""
        self.timeout_s = timeout_s
        self._probes += 1
        video = VideoInput(f"probe-{self._probes}", path)
        worker = self.workers[0]
        worker.assigned.append(video)
        worker.inbox.put(("probe", video.video_id, str(path)))
        while True:
            for sender, message in self.messages(min(timeout_s, 0.5)):
                if message[1] != video.video_id:
                    continue
                self.finished(sender, video.video_id)
                if message[0] == "info":
                    return message[2]
                raise error_from_report(message[2], message[3])

    def revive(self) -> None:
        """Replace workers that died while idle (their death was no video's fault, so nobody is told)."""
        for index, worker in enumerate(self.workers):
            if not worker.assigned and not worker.process.is_alive():
                self._stop(worker, kill=True)
                self.workers[index] = self._start()

    def reset(self) -> None:
        """Replace every worker left with videos assigned (a caller that stopped mid-video: cancel or error), so the
        next caller finds idle workers with empty pipes and all their slots free."""
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
        detail = f"{current.path}: {reason}" + (f" (exit code {exit_code})" if kind == ErrorKind.WORKER_CRASHED else "")
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

    def close(self) -> None:
        for worker in self.workers:
            self._stop(worker, kill=worker.process.exitcode is None and bool(worker.assigned))


class _PersistentPool:
    """A one-worker ``_DecodePool`` started on first use and kept across calls, one caller at a time.

    Isolation without a process start per video: the worker is replaced only when it is killed on a timeout, dies,
    or is left mid-video by a caller that stopped early (a cancel); the video that caused it gets the typed error.
    """

    def __init__(self, settings: DecodeSettings, *, slots: int, snippets_per_chunk: int, pin_for_cuda: bool):
        self._options = dict(workers=1, timeout_s=None, slot_mib=32, slots_per_worker=slots,
                             snippets_per_chunk=snippets_per_chunk, pin_for_cuda=pin_for_cuda)
        self._settings = settings
        self._lock = threading.Lock()
        self._pool: _DecodePool | None = None

    @contextmanager
    def lease(self) -> Iterator[_DecodePool]:
        """The pool, started if need be, for this caller alone; left clean for the next one."""
        with self._lock:
            if self._pool is None:
                self._pool = _DecodePool(self._settings, **self._options)  # type: ignore[arg-type]
            self._pool.revive()
            try:
                yield self._pool
            finally:
                self._pool.reset()

    def close(self, wait_s: float = 30.0) -> None:
        """Stop the worker. A caller still holding the pool after ``wait_s`` (a hung shutdown) loses it anyway."""
        acquired = self._lock.acquire(timeout=wait_s)
        try:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        finally:
            if acquired:
                self._lock.release()


def _close_pools(*pools: _PersistentPool) -> None:
    for pool in pools:
        pool.close()


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


def _run_engine(
    extractor: FeatureExtractor,
    videos: Sequence[VideoInput],
    *,
    on_done: VideoDone,
    on_failed: VideoFailed,
    on_snippets: Callable[[int], None] = lambda count: None,
    on_start: VideoStarted = lambda video, info, plan: None,
    workers: int,
    timeout_s: float | None,
    slot_mib: int = 32,
    pool: _DecodePool | None = None,
) -> None:
    """Decode ``videos`` in workers and push their snippets through the extractor in cross-video batches.

    Starts ``workers`` decoding processes and stops them at the end, unless a running ``pool`` is lent (which is
    left running, all its slots handed back)."""
    cuda = extractor.device.type == "cuda"
    threads = torch.get_num_threads()
    owned = pool is None
    if pool is None:
        pool = _DecodePool(
            extractor.decode, workers=workers, timeout_s=timeout_s, slot_mib=slot_mib, slots_per_worker=3,
            snippets_per_chunk=extractor.batch_size, pin_for_cuda=cuda,
        )
    pool.timeout_s = timeout_s
    if not cuda:  # leave the decoders their cores: oversubscribed OpenMP threads slow the forward pass severalfold
        torch.set_num_threads(max(1, min(threads, (os.cpu_count() or 1) - len(pool.workers))))
    pending = deque(videos)
    states: dict[str, _VideoState] = {video.video_id: _VideoState(video) for video in videos}
    batch: list[tuple[str, int, torch.Tensor]] = []  # (video id, first snippet, clips on the device)
    releases: list[tuple[Any, _Worker, int]] = []  # slots whose device copy may still be in flight

    def settle(video_id: str) -> None:
        state = states.get(video_id)
        if state is None or not state.decoded or state.in_flight:
            return
        del states[video_id]
        parts = [state.parts[first] for first in sorted(state.parts)]
        assert state.plan is not None and state.info is not None
        features = np.concatenate(parts) if parts else np.zeros((0, extractor.spec.dim), np.float32)
        if features.shape[0] != state.plan.num_snippets:
            on_failed(state.video, "corrupt", f"{state.video.path}: decoded {features.shape[0]} of "
                      f"{state.plan.num_snippets} snippets")
            return
        on_done(state.video, ExtractedVideo(features, state.info, state.plan))

    def flush() -> None:
        if not batch:
            return
        features = extractor.forward_clips(torch.cat([clips for _, _, clips in batch]))
        offset = 0
        for video_id, first, clips in batch:
            count = clips.shape[0]
            state = states.get(video_id)
            if state is not None:
                state.parts[first] = features[offset : offset + count]
                state.in_flight -= 1
            offset += count
            on_snippets(count)
        touched = {video_id for video_id, _, _ in batch}
        batch.clear()
        for video_id in touched:
            settle(video_id)

    def add_chunk(worker: _Worker, video_id: str, first: int, snippets: torch.Tensor, slot: int | None) -> None:
        state = states.get(video_id)
        if state is not None:
            state.in_flight += 1
            batch.append((video_id, first, extractor.clips(snippets)))
        if slot is not None:
            if cuda and worker.pinned:
                event = torch.cuda.Event()
                event.record()
                releases.append((event, worker, slot))
            else:
                pool.release(worker, slot)
        if sum(clips.shape[0] for _, _, clips in batch) >= extractor.batch_size:
            flush()

    try:
        while pending or pool.busy or batch:
            pool.assign(pending)
            messages = pool.messages(0.0 if batch else 0.5)
            for worker, message in messages:
                kind, video_id = message[0], message[1]
                if kind == "start":
                    states[video_id].info, states[video_id].plan = message[2], message[3]
                    on_start(states[video_id].video, message[2], message[3])
                elif kind == "chunk":
                    first, slot, shape = message[2:]
                    nbytes = int(np.prod(shape))
                    add_chunk(worker, video_id, first, worker.slots[slot, :nbytes].view(shape), slot)
                elif kind == "inline":
                    add_chunk(worker, video_id, message[2], torch.from_numpy(message[3]), None)
                elif kind == "done":
                    pool.finished(worker, video_id)
                    states[video_id].decoded = True
                    settle(video_id)
                elif kind == "error":
                    pool.finished(worker, video_id)
                    state = states.pop(video_id, None)
                    if state is not None:
                        on_failed(state.video, message[2], message[3])
            for release in [entry for entry in releases if entry[0].query()]:
                releases.remove(release)
                pool.release(release[1], release[2])
            if not messages:
                flush()
    finally:
        if cuda:
            torch.cuda.synchronize()
        for _, worker, slot in releases:  # every copy has finished: a lent pool gets all its slots back
            pool.release(worker, slot)
        torch.set_num_threads(threads)
        if owned:
            pool.close()


def _extract_in_worker(
    extractor: FeatureExtractor, path: Path, timeout_s: float, progress: Progress | None, pool: _DecodePool
) -> ExtractedVideo:
    """``extract_video`` with decoding in ``pool``'s killable worker; re-raises the worker's typed error here."""
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

    _run_engine(
        extractor,
        [VideoInput(path.stem, path, path.is_dir())],
        on_done=lambda video, extracted: results.append(extracted),
        on_failed=lambda video, kind, message: failures.append((kind, message)),
        on_snippets=count,
        on_start=started,
        workers=1,
        timeout_s=timeout_s,
        pool=pool,
    )
    if failures:
        kind, message = failures[0]
        raise error_from_report(kind, message)
    return results[0]


# ----------------------------------------------------------------------------------------------------------------
# The archive engine.


@dataclass
class ExtractionReport:
    """What a run did: videos extracted now, skipped as already done, and failed (id -> reason)."""

    out_dir: Path
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    snippets: int = 0
    frames: int = 0
    seconds: float = 0.0
    video_seconds: float = 0.0

    def summary(self) -> str:
        rate = self.snippets / self.seconds if self.seconds else 0.0
        realtime = self.video_seconds / self.seconds if self.seconds else 0.0
        lines = [
            f"{len(self.extracted)} extracted, {len(self.skipped)} already done, {len(self.failed)} failed; "
            f"{self.snippets} snippets in {self.seconds:.1f} s ({rate:.1f} snippets/s, {realtime:.1f}x real time) "
            f"-> {self.out_dir}"
        ]
        lines += [f"  failed {video_id}: {reason}" for video_id, reason in sorted(self.failed.items())]
        return "\n".join(lines)


def extract_archive(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    extractor: FeatureExtractor | None = None,
    workers: int = 2,
    timeout_s: float | None = 600.0,
    progress: bool = True,
    **extractor_options: Any,
) -> ExtractionReport:
    """Extract every video of ``inputs`` (files, folders, frame folders, path lists) into the store ``out_dir``.

    Videos already finished in the store are skipped; failed ones are retried. Pass a ready ``extractor`` or the
    ``FeatureExtractor`` keyword options.
    """
    extractor = extractor or FeatureExtractor(**extractor_options)
    videos = expand_inputs([str(item) for item in inputs])
    store = FeatureStore(out_dir, extractor.spec)
    report = ExtractionReport(Path(out_dir))
    todo = []
    for video in videos:
        if store.is_done(video.video_id):
            report.skipped.append(video.video_id)
        else:
            todo.append(video)
    bar = _progress_bar(len(todo), progress)
    started = time.perf_counter()

    def done(video: VideoInput, extracted: ExtractedVideo) -> None:
        info = extracted.info
        store.write(
            video.video_id, extracted.features, source=str(video.path), num_frames=info.num_frames, fps=info.fps,
            duration_s=info.duration_s, width=info.width, height=info.height, backend=info.backend,
        )
        report.extracted.append(video.video_id)
        report.frames += info.num_frames
        report.video_seconds += info.duration_s
        bar.update(1)

    def failed(video: VideoInput, kind: str, message: str) -> None:
        store.fail(video.video_id, message, error_kind=kind, source=str(video.path))
        report.failed[video.video_id] = f"{kind}: {message}"
        log.warning("failed %s: %s", video.video_id, message)
        bar.update(1)

    def snippets(count: int) -> None:
        report.snippets += count
        elapsed = time.perf_counter() - started
        bar.set_postfix(snippets_s=f"{report.snippets / max(elapsed, 1e-9):.1f}", failed=len(report.failed))

    try:
        if todo:
            _run_engine(extractor, todo, on_done=done, on_failed=failed, on_snippets=snippets, workers=workers,
                        timeout_s=timeout_s)
    finally:
        bar.close()
        report.seconds = time.perf_counter() - started
    return report


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="video", desc="extract", disable=not enabled, dynamic_ncols=True)
