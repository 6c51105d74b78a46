"""``lanp extract``'s job: every video of an archive through the engine into a resumable ``FeatureStore``.

The store's manifest makes runs resumable (finished videos are skipped, failed ones retried); a video that fails
to decode, or whose worker stops making progress for ``timeout_s`` (the worker is killed and replaced), is
recorded as failed and the run goes on. ``ExtractionReport`` says what a run did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lanp_vad.pipeline.features.defaults import DEFAULT_TIMEOUT_S, DEFAULT_WORKERS
from lanp_vad.pipeline.features.engine import DecodePool, ExtractedVideo, run_engine
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.features.featureset import FeatureStore
from lanp_vad.pipeline.progress import progress_bar
from lanp_vad.pipeline.video.inputs import VideoInput, expand_inputs

log = logging.getLogger(__name__)


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
    extractor: FeatureExtractor,
    *,
    workers: int = DEFAULT_WORKERS,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> ExtractionReport:
    """Extract every video of ``inputs`` (files, folders, frame folders, path lists) into the store ``out_dir``
    with ``workers`` decoding processes (those the extractor started early, if it was built with
    ``archive_workers``). Videos already finished in the store are skipped; failed ones retried."""
    videos = expand_inputs([str(item) for item in inputs])
    store = FeatureStore(out_dir, extractor.spec)
    report = ExtractionReport(Path(out_dir))
    todo = []
    for video in videos:
        if store.is_done(video.video_id):
            report.skipped.append(video.video_id)
        else:
            todo.append(video)
    bar = progress_bar(total=len(todo), desc="extract", unit="video", enabled=progress)
    started = time.perf_counter()

    def done(video: VideoInput, extracted: ExtractedVideo) -> None:
        info = extracted.info
        store.write(
            video.video_id, extracted.features, source=str(video.path), num_frames=info.num_frames, fps=info.fps,
            duration_s=info.duration_s, width=info.width, height=info.height, backend=info.backend,
            runtime=extractor.runtime,
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

    pool = extractor.take_archive_pool() or DecodePool.for_archive(
        extractor.decode, workers=min(workers, max(1, len(todo))), snippets_per_chunk=extractor.batch_size,
        device=extractor.device,
    )
    try:
        if todo:
            with pool.lease(timeout_s):
                run_engine(extractor, todo, pool, on_done=done, on_failed=failed, on_snippets=snippets)
    finally:
        pool.close()
        bar.close()
        report.seconds = time.perf_counter() - started
    return report

