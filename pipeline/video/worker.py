"""The decoding half of extraction, and the worker process that runs it away from the caller.

Kept free of torch on purpose: a decode worker is a spawned process, and importing only this module (numpy, PyAV,
``pipeline.video.decode``) starts several times faster and in a fraction of the memory that importing torch
takes. The main process (``pipeline.features.engine``) owns the workers; see ``DecodePool`` there.

Protocol: the worker takes ``(task, video_id, path)`` from its inbox (``None`` stops it). ``task`` is ``"decode"``
(send ``start`` with the header and snippet plan, then ``chunk``/``inline`` snippets, then ``done``) or ``"probe"``
(send ``info`` with the header only). Any failure is sent as ``("error", video_id, kind, message)`` with the
error's ``ErrorKind`` (``internal`` for anything but our own errors: a bug is not the video's fault), and the
main process rebuilds it with :func:`error_from_report`. Decoded chunks go through a shared-memory slot whose
index the main process hands back on ``free_slots`` once it has copied it. The worker exits by itself when its
parent dies (no orphans).
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lanp_vad.models.errors import Canceled, ErrorKind, InternalError, LANPError, UserError, error_kind
from lanp_vad.pipeline.video.decode import Backend, open_video
from lanp_vad.pipeline.video.errors import VIDEO_ERRORS, VideoError
from lanp_vad.pipeline.video.reader import VideoReader
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH, SnippetPlan, SnippetPlanError

WAITING = float("inf")
"""Heartbeat value while a worker waits for work or for a free slot (not a stall)."""
PARENT_CHECK_S = 1.0
"""How often a waiting worker checks that its parent is still alive."""

DECODER_NICENESS = 10
"""How much an archive extraction's decode workers lower their priority on a CPU whose cores the inference
runtime already fills. Decoding is a small share of the work there and runs ahead of the backbone in its slots;
at equal priority it took its core from one of the runtime's threads, and each parallel operator of the runtime
then waited for that thread. Lowered, it runs in the gaps (the transform's serial parts, the runtime's idle
threads) and at full speed whenever the main process waits for it, so the worst case is the plain loop's serial
order (bench/extract.py)."""

_USER_KINDS = frozenset({ErrorKind.INVALID_ARGUMENT, ErrorKind.INVALID_INPUT, ErrorKind.NOT_FOUND})
"""Kinds a worker may report that are the user's to fix (a bad setting, a path that went away)."""


class DecoderCrashedError(InternalError):
    """The decoding worker process died while it held this video (a decoder crash, or it was killed): the
    machine's failure, not proof that the video is bad; the caller lives and gets a fresh worker."""

    kind = ErrorKind.WORKER_CRASHED


def error_from_report(kind: str, message: str) -> LANPError:
    """The error a worker reported as ``("error", video_id, kind, message)``, rebuilt with its class (or, for
    kinds without a class of their own, its family: the user's, the video's, or ours)."""
    for cls in (*VIDEO_ERRORS, DecoderCrashedError):
        if cls.kind == kind:
            return cls(message)
    try:
        known = ErrorKind(kind)
    except ValueError:
        known = ErrorKind.INTERNAL
    family = UserError if known in _USER_KINDS else VideoError if known == ErrorKind.TOO_SHORT else InternalError
    return family(message, kind=known)



def snippet_frame_offsets(length: int, frames: int) -> np.ndarray:
    """Which of a snippet's ``length`` frames feed the backbone: ``frames`` evenly spread, centred in their bins."""
    if not 1 <= frames <= length:
        raise ValueError(f"frames per snippet must be in 1..{length}, got {frames}")
    return ((np.arange(frames) + 0.5) * length / frames).astype(np.int64)


@dataclass(frozen=True)
class DecodeSettings:
    """The decoding half of an extractor (picklable: worker processes receive it)."""

    snippet_length: int = SNIPPET_LENGTH
    stride: int = SNIPPET_LENGTH
    pad_last: bool = True
    frames_per_snippet: int = SNIPPET_LENGTH
    target_fps: float | None = None
    max_side: int | None = None
    # PyAV by default: it decoded these clips faster than decord (num_threads=1) and spares every worker decord's
    # large import (bench/decode.py); "auto" is decord with PyAV as fallback.
    backend: Backend = "pyav"
    max_short_side: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.frames_per_snippet <= self.snippet_length or self.stride < 1:
            raise UserError(
                f"decode settings: need 1 <= frames per snippet ({self.frames_per_snippet}) <= snippet length "
                f"({self.snippet_length}) and a positive stride ({self.stride})"
            )

    def open_reader(self, source: str | Path | BinaryIO) -> VideoReader:
        """The video opened (and checked) with these settings' backend, frame rate and size limits."""
        return open_video(
            source,
            backend=self.backend,
            target_fps=self.target_fps,
            max_side=self.max_side,
            max_short_side=self.max_short_side,
        )

    def open(self, source: str | Path | BinaryIO) -> tuple[VideoReader, SnippetPlan]:
        reader = self.open_reader(source)
        try:
            plan = SnippetPlan.build(
                reader.info.num_frames, length=self.snippet_length, stride=self.stride, pad_last=self.pad_last
            )
        except SnippetPlanError as error:  # the settings are valid, so the video is too short for them
            reader.close()
            raise VideoError(f"{reader.info.source}: {error}", kind=ErrorKind.TOO_SHORT) from error
        return reader, plan

    def iter_chunks(
        self, reader: VideoReader, plan: SnippetPlan, snippets_per_chunk: int
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(first snippet, uint8 (k, frames_per_snippet, H, W, 3))``, decoding only the frames fed onward."""
        offsets = snippet_frame_offsets(plan.length, self.frames_per_snippet)
        for first in range(0, plan.num_snippets, snippets_per_chunk):
            snippets = range(first, min(first + snippets_per_chunk, plan.num_snippets))
            indices = np.concatenate([plan.frame_indices(i)[offsets] for i in snippets])
            frames = reader.read_frames(indices)
            yield first, frames.reshape(len(snippets), self.frames_per_snippet, *frames.shape[1:])


class ParentGone(Canceled):
    """The process that started this worker died: nobody will read what the worker sends, so it stops."""


def _wait_for(channel: Any) -> Any:
    """``channel.get()``, giving up when the parent process dies (checked every ``PARENT_CHECK_S``)."""
    parent = multiprocessing.parent_process()
    while True:
        try:
            return channel.get(timeout=PARENT_CHECK_S)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                raise ParentGone from None


def decode_worker_main(
    settings: DecodeSettings,
    inbox: Any,
    free_slots: Any,
    sender: Connection,
    slots: Any,
    slot_bytes: int,
    heartbeat: Any,
    snippets_per_chunk: int,
) -> None:
    """Serve decode and probe tasks from ``inbox`` until told to stop or orphaned (see the module docstring)."""
    slot_views = np.frombuffer(slots, dtype=np.uint8).reshape(-1, slot_bytes)
    try:
        while True:
            heartbeat.value = WAITING
            task = _wait_for(inbox)
            if task is None:
                return
            kind, video_id, path = task
            heartbeat.value = time.monotonic()
            try:
                if kind == "probe":
                    with settings.open_reader(path) as reader:
                        sender.send(("info", video_id, reader.info))
                else:
                    _decode(settings, video_id, path, free_slots, sender, slot_views, heartbeat, snippets_per_chunk)
            except (ParentGone, BrokenPipeError, ConnectionResetError):
                raise
            except LANPError as error:
                sender.send(("error", video_id, str(error.kind), str(error)))
            except FileNotFoundError as error:  # the video went away between listing and decoding
                sender.send(("error", video_id, str(ErrorKind.NOT_FOUND), f"{path}: {error.strerror}"))
            except Exception as error:  # anything else is a bug here or in a library: internal, not the video's
                message = f"{path}: {type(error).__name__}: {error}"
                sender.send(("error", video_id, str(error_kind(error)), message))
    except (ParentGone, BrokenPipeError, EOFError):
        return  # the parent is gone or closed our pipe: nothing left to serve


def _decode(
    settings: DecodeSettings,
    video_id: str,
    path: str,
    free_slots: Any,
    sender: Connection,
    slot_views: np.ndarray,
    heartbeat: Any,
    snippets_per_chunk: int,
) -> None:
    reader, plan = settings.open(path)
    with reader:
        sender.send(("start", video_id, reader.info, plan))
        info = reader.info
        slot_bytes = slot_views.shape[1]
        snippet_bytes = settings.frames_per_snippet * info.height * info.width * 3
        per_chunk = max(1, min(snippets_per_chunk, slot_bytes // snippet_bytes))
        for first, chunk in settings.iter_chunks(reader, plan, per_chunk):
            heartbeat.value = WAITING
            if chunk.nbytes > slot_bytes:
                sender.send(("inline", video_id, first, chunk))
            else:
                slot = _wait_for(free_slots)
                slot_views[slot, : chunk.nbytes] = chunk.reshape(-1)
                sender.send(("chunk", video_id, first, slot, chunk.shape))
            heartbeat.value = time.monotonic()
    sender.send(("done", video_id))
