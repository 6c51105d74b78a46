"""Watching a live source: decode as it plays, score every snippet as soon as it can be, report events as they
happen, as JSON-ready records (``lanp watch`` writes them as JSON lines; the service can stream them).

Two threads. The *reader* (``_read``) connects, decodes, cuts snippets with ``SnippetAssembler`` and puts them in
a bounded ``Backlog``; on a lost or refused connection it ends the session and reconnects with ``Backoff``. The
*inference* loop (``run``, the caller's thread) takes snippets in batches, makes their features with the model's
own extractor (``Scorer.extractor``: the same backbone, sampling and transforms as ``lanp score``), classifies
them through ``TemporalContext`` (so each score equals offline scoring of the same frames) and turns the frame
scores into ``event_start`` / ``event_end`` records with ``LiveSegmenter`` (the offline segment rules). When
inference falls behind, the backlog drops whole snippets (oldest first); their frames keep the last score, and a
``dropped`` record says how far behind inference was.

Records (each has ``type`` and ``wall_time``, Unix seconds): ``start`` (source, model, feature spec, config),
``connected``, ``snippet`` (score, frames, stream times, latency), ``dropped``, ``event_start``, ``event_end``
(the segment, and a JPEG of the peak snippet's first sampled frame), ``warning`` (once a session: the stream is
unlike the model's training archive, as a scored video's ``domain_shift`` warning says), ``disconnected``,
``reconnecting``, ``gave_up``, ``stopped``. ``stop()`` (a signal handler may call it) ends the session cleanly:
the last partial snippet is scored and open events are closed.
"""

from __future__ import annotations

import base64
import contextlib
import io
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lanp_vad.models.detector import Detector
from lanp_vad.models.errors import VideoError
from lanp_vad.pipeline.live.assembler import SessionEnd, Snippet, SnippetAssembler
from lanp_vad.pipeline.live.backlog import Backlog, Notice
from lanp_vad.pipeline.live.context import TemporalContext
from lanp_vad.pipeline.live.segmenter import LiveSegmenter, SegmentEvent
from lanp_vad.pipeline.live.source import Backoff, SourceConfig, check_source, is_file, open_live
from lanp_vad.pipeline.scoring.result import DomainShift, domain_shift_warning
from lanp_vad.pipeline.scoring.scorer import Scorer, check_threshold
from lanp_vad.pipeline.training.domain import SHIFT_WARN_AT

Record = dict[str, Any]
THUMBNAILS_KEPT = 32
"""Candidate peak thumbnails kept per undecided stretch (the highest-scoring snippets)."""
SHIFT_WINDOW = 16
"""A stream's domain-shift figure is the median distance of its last this-many snippets (a video's: all of them)."""
SHIFT_MIN_SNIPPETS = 4
"""Snippets seen before a session's figure is trusted enough to warn."""
STOP_WAIT_S = 0.5
"""After ``stop()``, how long inference waits for the reader's last snippets before it ends the watch."""


class WatchConfig(BaseModel):
    """Everything that shapes a watch besides the model (saved in the ``start`` record)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: SourceConfig = Field(default_factory=SourceConfig)
    backlog_snippets: int = Field(4, ge=1, description="snippets waiting for inference before the oldest drops")
    batch_snippets: int = Field(8, ge=1, description="most snippets per backbone call when catching up")
    threshold: float | None = Field(None, description="event threshold in [0, 1]; None: the model's")
    thumbnails_dir: str | None = Field(None, description="write event thumbnails here; None: inline base64")


class Watcher:
    """Watch ``source`` with ``scorer``'s model, passing every record to ``emit`` (from the calling thread).

    ``device_turn`` is entered around each batch of inference (backbone and classifier): the service passes its
    scheduler's turn, so that streams share the one device fairly with uploads and jobs; ``lanp watch`` runs
    alone and needs none. While it waits, the backlog keeps dropping the oldest snippets."""

    def __init__(self, scorer: Scorer, source: str, emit: Callable[[Record], None],
                 config: WatchConfig | None = None,
                 device_turn: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext):
        self.scorer = scorer
        self.device_turn = device_turn
        self.source = check_source(source)
        self.emit_record = emit
        self.config = config or WatchConfig()
        self.threshold = scorer.threshold if self.config.threshold is None else check_threshold(self.config.threshold)
        self.settings = scorer.extractor.decode
        self.backlog = Backlog(self.config.backlog_snippets)
        # a stream has no end: its windows are scored without the video's own propagation
        head = scorer.head.for_stream() if isinstance(scorer.head, Detector) else scorer.head
        self.context: TemporalContext[Snippet] = TemporalContext(head, head.radius, context_window=head.context_window)
        self._stop = threading.Event()
        self._stopped_at: float | None = None
        self.gave_up = False
        self.sessions = self.scored = self.dropped = 0
        self._segmenter: LiveSegmenter | None = None
        self._last_score = 0.0
        self._thumbnails: dict[int, tuple[float, np.ndarray]] = {}
        self._distances: deque[float] = deque(maxlen=SHIFT_WINDOW)
        self._shift_session: int | None = None
        self._shift_warned = False

    def stop(self) -> None:
        """Ask the watch to end (safe from a signal handler or another thread)."""
        self._stop.set()

    def _emit(self, record: Record) -> None:
        self.emit_record({**record, "wall_time": time.time()})

    # ------------------------------------------------------------------------------------------ the reader thread

    def _read(self) -> None:
        backoff = Backoff(self.config.source)
        try:
            while not self._stop.is_set():
                try:
                    connection = open_live(self.source, self.config.source)
                except VideoError as error:
                    if not self._wait_to_retry(backoff, error.kind, str(error)):
                        return
                    continue
                self.sessions += 1
                backoff.reset()
                session = self.sessions
                self.backlog.put(Notice({"type": "connected", "session": session, **connection.describe()}))
                assembler = SnippetAssembler(self.settings, session=session, source_fps=connection.fps,
                                             width=connection.width, height=connection.height)
                reason, kind = "end of stream", None
                try:
                    for seconds, frame in connection.frames(self._stop.is_set):
                        for snippet in assembler.push(seconds, frame):
                            self.backlog.put(snippet)
                    if self._stop.is_set():
                        reason = "stopped"
                except VideoError as error:
                    reason, kind = str(error), error.kind
                finally:
                    connection.close()
                snippets, end = assembler.finish(reason, kind)
                for snippet in snippets:
                    self.backlog.put(snippet)
                self.backlog.put(end)
                if self._stop.is_set() or is_file(self.source):
                    return
                if not self._wait_to_retry(backoff, kind or "end_of_stream", reason):
                    return
        finally:
            self.backlog.close()

    def _wait_to_retry(self, backoff: Backoff, kind: str, reason: str) -> bool:
        """Announce the next attempt and wait for it (False: give up, or a stop came)."""
        delay = backoff.next_delay()
        if delay is None:
            self.gave_up = True
            self.backlog.put(Notice({"type": "gave_up", "kind": kind, "reason": reason,
                                     "attempts": backoff.failures - 1}))
            return False
        self.backlog.put(Notice({"type": "reconnecting", "kind": kind, "reason": reason, "in_s": delay,
                                 "attempt": backoff.failures}))
        return not self._stop.wait(delay)

    # ------------------------------------------------------------------------------------------ inference

    def run(self, *, warm_up: bool = True) -> int:
        """Watch until the source ends for good or ``stop()``; 0, or 1 when the source could not be reached.

        ``warm_up=False`` for a scorer that is warm already and busy elsewhere (the service's: its warm-up would
        wait for the decode process the inference worker is using)."""
        self._emit({"type": "start", "source": self.source, "threshold": self.threshold,
                    "model": self.scorer.identity, "feature_spec": self.scorer.spec_identity,
                    "config": self.config.model_dump(mode="json")})
        if warm_up:
            self.scorer.warm_up()  # the first backbone call is slow: pay it before the stream plays
        reader = threading.Thread(target=self._read, name="lanp-watch-reader", daemon=True)
        reader.start()
        while True:
            if self.backlog.wait(timeout=0.25):
                with self.device_turn():  # what waits is taken only now: the freshest, the rest dropped meanwhile
                    self._handle(self.backlog.take(self.config.batch_snippets, timeout=0))
            elif self.backlog.closed:
                break
            elif self._stop.is_set():
                self._stopped_at = self._stopped_at or time.monotonic()
                if time.monotonic() - self._stopped_at > STOP_WAIT_S:
                    break  # the reader waits in a read (a silent source): it ends by its read timeout, unwaited
        self._emit({"type": "stopped", "reason": "stop requested" if self._stop.is_set() else "source ended",
                    "sessions": self.sessions, "snippets_scored": self.scored, "snippets_dropped": self.dropped})
        return 1 if self.gave_up and self.scored == 0 else 0

    def _handle(self, items: list[Snippet | SessionEnd | Notice]) -> None:
        with_pixels = [item for item in items if isinstance(item, Snippet) and not item.dropped]
        features = self._features(with_pixels)
        self._check_shift(with_pixels, features)
        for item in items:
            if isinstance(item, Notice):
                self._emit(item.record)
            elif isinstance(item, SessionEnd):
                self._scored(self.context.finish())
                self._end_session(item)
            elif item.dropped:
                self._scored(self.context.finish())
                self._dropped(item)
            else:
                self._scored(self.context.add(item, features.pop(id(item))))

    def _features(self, snippets: list[Snippet]) -> dict[int, np.ndarray]:
        """Backbone features of the snippets, one call per run of equal frame sizes (a session's)."""
        out: dict[int, np.ndarray] = {}
        start = 0
        while start < len(snippets):
            stop = start + 1
            while stop < len(snippets) and snippets[stop].frames.shape == snippets[start].frames.shape:
                stop += 1
            batch = snippets[start:stop]
            for snippet, feature in zip(batch, self.scorer.extractor.features(np.stack([s.frames for s in batch])),
                                        strict=True):
                out[id(snippet)] = feature
            start = stop
        return out

    def _check_shift(self, snippets: list[Snippet], features: dict[int, np.ndarray]) -> None:
        """Warn once a session when its recent snippets lie as far from the training archive as a video's must for
        ``lanp score`` to warn (the model's feature statistics; models without them never warn)."""
        stats = self.scorer.feature_stats
        if stats is None or not snippets:
            return
        distances = stats.distances(np.stack([features[id(snippet)] for snippet in snippets]))
        for snippet, distance in zip(snippets, distances, strict=True):
            if snippet.session != self._shift_session:
                self._shift_session, self._shift_warned = snippet.session, False
                self._distances.clear()
            self._distances.append(float(distance))
            figure = float(np.median(self._distances))
            if self._shift_warned or len(self._distances) < SHIFT_MIN_SNIPPETS or figure <= SHIFT_WARN_AT:
                continue
            self._shift_warned = True
            shift = DomainShift(score=figure, threshold=SHIFT_WARN_AT, out_of_distribution=True)
            warning = domain_shift_warning(shift)
            self._emit({"type": "warning", "session": snippet.session, "kind": str(warning.kind),
                        "message": warning.message, "domain_shift": shift.model_dump(), "snippet": snippet.index})

    def _segmenter_for(self, snippet: Snippet) -> LiveSegmenter:
        if self._segmenter is None:
            options = self.scorer.config  # the scorer's segment rules (lanp score's defaults)
            self._segmenter = LiveSegmenter(snippet.fps, self.threshold, smooth_s=options.smooth_s,
                                            min_duration_s=options.min_duration_s, merge_gap_s=options.merge_gap_s)
        return self._segmenter

    def _scored(self, scored: list[tuple[Snippet, float]]) -> None:
        for snippet, score in scored:
            now = time.time()
            self.scored += 1
            self._last_score = score
            self._emit({
                "type": "snippet", "session": snippet.session, "snippet": snippet.index, "score": score,
                "start_frame": snippet.first_frame, "end_frame": snippet.end_frame,
                "start_s": float(snippet.times[0]), "end_s": float(snippet.times[-1] + 1.0 / snippet.fps),
                "latency_s": now - snippet.completed, "first_frame_latency_s": now - snippet.first_arrival,
                "backlog": len(self.backlog), "padded": snippet.padded,
            })
            self._keep_thumbnail(snippet, score)
            self._events(self._segmenter_for(snippet).add(np.full(snippet.times.size, score), snippet.times),
                         snippet.session)
            snippet.frames = None

    def _dropped(self, snippet: Snippet) -> None:
        self.dropped += 1
        self._emit({"type": "dropped", "session": snippet.session, "snippet": snippet.index,
                    "start_frame": snippet.first_frame, "end_frame": snippet.end_frame,
                    "start_s": float(snippet.times[0]), "lag_s": time.time() - snippet.completed,
                    "held_score": self._last_score, "dropped_total": self.dropped})
        segmenter = self._segmenter_for(snippet)
        self._events(segmenter.add(np.full(snippet.times.size, self._last_score), snippet.times), snippet.session)

    def _end_session(self, end: SessionEnd) -> None:
        if self._segmenter is not None:
            if end.leftover_times.size:
                self._events(self._segmenter.add(np.full(end.leftover_times.size, self._last_score),
                                                 end.leftover_times), end.session)
            frames = self._segmenter.num_frames
            self._events(self._segmenter.finish(), end.session)
        else:
            frames = int(end.leftover_times.size)
        self._emit({"type": "disconnected", "session": end.session, "reason": end.reason, "kind": end.kind,
                    "frames": frames})
        self._segmenter, self._last_score = None, 0.0
        self._thumbnails.clear()

    # ------------------------------------------------------------------------------------------ events

    def _keep_thumbnail(self, snippet: Snippet, score: float) -> None:
        if snippet.frames is None:
            return
        self._thumbnails[snippet.first_frame] = (score, snippet.frames[0].copy())
        if len(self._thumbnails) > THUMBNAILS_KEPT:
            lowest = min(self._thumbnails, key=lambda frame: self._thumbnails[frame][0])
            del self._thumbnails[lowest]

    def _events(self, events: list[SegmentEvent], session: int) -> None:
        for event in events:
            segment = event.segment
            if event.kind == "start":
                self._emit({"type": "event_start", "session": session, "start_frame": segment.start_frame,
                            "start_s": segment.start_s, "peak": segment.peak})
            else:
                self._emit({"type": "event_end", "session": session, **segment.model_dump(),
                            "thumbnail": self._thumbnail(session, segment.start_frame, segment.end_frame)})
        if self._segmenter is not None:
            region = self._segmenter.region
            self._thumbnails = {f: kept for f, kept in self._thumbnails.items() if f + self.settings.stride > region}

    def _thumbnail(self, session: int, start: int, end: int) -> dict[str, Any] | None:
        """The best-scoring kept snippet that overlaps ``[start, end)``: its first sampled frame as JPEG."""
        stride = self.settings.stride
        inside = [f for f in self._thumbnails if f < end and f + stride > start]
        if not inside:
            return None
        best = max(inside, key=lambda frame: self._thumbnails[frame][0])
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(self._thumbnails[best][1]).save(buffer, format="JPEG", quality=85)
        thumbnail: dict[str, Any] = {"snippet_start_frame": best}
        if self.config.thumbnails_dir is None:
            thumbnail["jpeg_base64"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        else:
            path = Path(self.config.thumbnails_dir) / f"session{session}-frame{best}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(buffer.getvalue())
            thumbnail["path"] = str(path)
        return thumbnail
