"""Batch scoring of a video archive: resumable, crash-safe, one JSON per video plus tables across videos.

Layout of an output folder::

    run.json            the model (hash of its files) and threshold the folder belongs to
    manifest.jsonl      one fsynced line per event (started / ok / failed); the latest line per video wins
    videos/<id>.json    the ``POST /score`` document of each scored video: the source of truth
    plots/<id>.png      score curves (``--plots``)
    snippets.parquet    video_id, path, snippet, start_frame, end_frame, start_s, end_s, score, model, spec_hash
    segments.csv        video_id, segment, start_frame, end_frame, start_s, end_s, peak, mean, threshold
    summary.csv         one row per video: duration, fps, snippets, max score, segments, status, error

A video's JSON (and plot) is written atomically before its ``ok`` line, so a killed run never leaves a result
that a rerun would take for finished; a rerun skips the finished videos and (with ``retry_failed``) retries the
failed ones. The three tables are rebuilt from the JSONs and the manifest at the end of every run, sorted by
video id, so they never hold duplicates and do not depend on the order in which workers finished.

Engines: ``local`` runs N worker processes, each with its own Scorer (on CPU the cores are split between them;
on a GPU one process owns the device), and kills a worker whose video runs past the timeout; ``ray`` runs the
same scoring on Ray Data (``pipeline.jobs.ray_engine``). Both feed ``VideoOutcome``s to the same writer.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import multiprocessing
import os
import queue
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.features.featureset import atomic_write_bytes, read_jsonl_records
from pipeline.video.inputs import VideoInput

log = logging.getLogger(__name__)

Engine = Literal["local", "ray"]
KILL_GRACE_S = 2.0
MODEL_FILES = ("model.safetensors", "feature_spec.json", "config.json", "metadata.json")
SUMMARY_COLUMNS = (
    "video_id", "path", "duration_s", "fps", "num_frames", "snippets", "max_score", "num_segments", "status", "error",
)
SEGMENT_COLUMNS = ("video_id", "segment", "start_frame", "end_frame", "start_s", "end_s", "peak", "mean", "threshold")
SNIPPET_COLUMNS = (
    "video_id", "path", "snippet", "start_frame", "end_frame", "start_s", "end_s", "score", "model", "spec_hash",
)


class BatchError(ValueError):
    """A batch job cannot start (output folder of another model, clashing video ids, unusable model)."""


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
    def failure(cls, video: VideoInput, kind: str, message: str, seconds: float = 0.0) -> VideoOutcome:
        return cls(video.video_id, str(video.path), "failed", error_kind=kind, error=message, seconds=seconds)


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


def model_identity(model_dir: Path) -> str:
    """A short hash of the model directory's files: what makes two runs' scores comparable."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = Path(model_dir) / name
        if path.exists():
            digest.update(name.encode())
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def score_one(scorer: Any, video: VideoInput, *, threshold: float | None, plots: bool,
              timeout_s: float | None = None) -> VideoOutcome:
    """Score one video with a loaded Scorer, turning every error into a recorded failure (the run goes on).

    ``timeout_s`` stops the scoring cooperatively (the Scorer polls ``cancel`` between snippet batches); a decoder
    hung in native code never returns to poll it, so the local pool also kills a worker that overruns.
    """
    from pipeline.scoring.scorer import ScoringCancelled

    start = time.perf_counter()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        score = scorer.score_video(video.path, threshold=threshold,
                                   cancel=None if deadline is None else lambda: time.monotonic() > deadline)
        document = score.to_dict()
        plot = None
        if plots:
            from pipeline.scoring.plot import plot_png

            plot = plot_png(score)
    except MemoryError:
        return VideoOutcome.failure(video, "out-of-memory", "ran out of memory", time.perf_counter() - start)
    except ScoringCancelled:
        return VideoOutcome.failure(video, "timeout", f"no result after {timeout_s:g} s: stopped",
                                    time.perf_counter() - start)
    except Exception as error:  # noqa: BLE001 - one bad video must not stop an archive
        kind = getattr(error, "kind", None) or type(error).__name__
        log.debug("%s failed:\n%s", video.video_id, traceback.format_exc())
        return VideoOutcome.failure(video, str(kind), str(error) or type(error).__name__, time.perf_counter() - start)
    return VideoOutcome(
        video.video_id, str(video.path), "ok", document=document, plot_png=plot,
        num_snippets=len(document.get("snippet_scores", ())), seconds=time.perf_counter() - start,
    )


class Manifest:
    """``manifest.jsonl``: append-only, fsynced, one JSON object a line; a torn last line is ignored."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = read_jsonl_records(path)
        self.latest: dict[str, dict[str, Any]] = {}
        for record in self.lines:
            if record.get("status") in ("ok", "failed"):
                self.latest[record["video_id"]] = record

    def append(self, record: dict[str, Any]) -> None:
        record = {**record, "time": round(time.time(), 3)}
        with self.path.open("a") as stream:
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        self.lines.append(record)
        if record.get("status") in ("ok", "failed"):
            self.latest[record["video_id"]] = record


class BatchOutputs:
    """The output folder: per-video files, the manifest, and the tables rebuilt from them."""

    def __init__(self, out_dir: Path, *, model: str, threshold: float | None):
        self.root = Path(out_dir)
        self.videos_dir = self.root / "videos"
        self.plots_dir = self.root / "plots"
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_run(model, threshold)
        self.manifest = Manifest(self.root / "manifest.jsonl")

    def _check_run(self, model: str, threshold: float | None) -> None:
        run_file = self.root / "run.json"
        wanted = {"model": model, "threshold": threshold}
        if run_file.exists():
            recorded = json.loads(run_file.read_text())
            if recorded != wanted:
                raise BatchError(
                    f"{self.root} holds results of model {recorded.get('model')} with threshold "
                    f"{recorded.get('threshold')}, not model {model} with threshold {threshold}: "
                    "use another --out folder (nothing was changed)"
                )
        else:
            atomic_write_bytes(run_file, json.dumps(wanted, indent=2).encode())

    def is_done(self, video_id: str) -> bool:
        record = self.manifest.latest.get(video_id)
        return bool(record) and record["status"] == "ok" and (self.videos_dir / f"{video_id}.json").exists()

    def is_failed(self, video_id: str) -> bool:
        record = self.manifest.latest.get(video_id)
        return bool(record) and record["status"] == "failed"

    def check_paths(self, videos: Iterable[VideoInput]) -> None:
        """Refuse a video whose id already names another file in this folder (its results would be mixed up)."""
        for video in videos:
            record = self.manifest.latest.get(video.video_id)
            if record and Path(record["path"]).resolve() != video.path.resolve():
                raise BatchError(
                    f"video id {video.video_id} of {video.path} already names {record['path']} in {self.root}: "
                    "use another --out folder or rename the file (nothing was changed)"
                )

    def started(self, video: VideoInput, run_id: str) -> None:
        self.manifest.append({"video_id": video.video_id, "path": str(video.path), "status": "started", "run": run_id})

    def record(self, outcome: VideoOutcome, run_id: str) -> None:
        """Write a finished video's files atomically, then its manifest line."""
        record: dict[str, Any] = {"video_id": outcome.video_id, "path": outcome.path, "status": outcome.status,
                                  "run": run_id, "seconds": round(outcome.seconds, 3)}
        if outcome.status == "ok":
            assert outcome.document is not None
            if outcome.plot_png is not None:
                atomic_write_bytes(self.plots_dir / f"{outcome.video_id}.png", outcome.plot_png)
            atomic_write_bytes(self.videos_dir / f"{outcome.video_id}.json", json.dumps(outcome.document).encode())
            record["snippets"] = outcome.num_snippets
        else:
            record.update(error_kind=outcome.error_kind, error=outcome.error)
        self.manifest.append(record)

    def rebuild_tables(self) -> None:
        """summary.csv, segments.csv and snippets.parquet from the per-video JSONs and the manifest, streamed."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        summary, segments = io.StringIO(), io.StringIO()
        summary_writer = csv.writer(summary, lineterminator="\n")
        segment_writer = csv.writer(segments, lineterminator="\n")
        summary_writer.writerow(SUMMARY_COLUMNS)
        segment_writer.writerow(SEGMENT_COLUMNS)
        types = (pa.string(), pa.string(), pa.int32(), pa.int64(), pa.int64(), pa.float64(), pa.float64(),
                 pa.float64(), pa.string(), pa.string())
        schema = pa.schema(list(zip(SNIPPET_COLUMNS, types, strict=True)))
        parquet_path = self.root / "snippets.parquet"
        temporary = parquet_path.with_name(f".{parquet_path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with pq.ParquetWriter(temporary, schema) as parquet:
                for video_id in sorted(self.manifest.latest):
                    record = self.manifest.latest[video_id]
                    if record["status"] != "ok" or not self.is_done(video_id):
                        error = (f"{record.get('error_kind')}: {record.get('error')}" if record["status"] == "failed"
                                 else f"missing: videos/{video_id}.json was removed; rerun to score it again")
                        summary_writer.writerow([video_id, record["path"], "", "", "", "", "", "", "failed", error])
                        continue
                    document = json.loads((self.videos_dir / f"{video_id}.json").read_text())
                    tables = document_tables(video_id, record["path"], document)
                    summary_writer.writerow(tables.summary)
                    segment_writer.writerows(tables.segments)
                    parquet.write_table(pa.Table.from_pydict(tables.snippets, schema=schema))
            os.replace(temporary, parquet_path)
        finally:
            temporary.unlink(missing_ok=True)
        atomic_write_bytes(self.root / "segments.csv", segments.getvalue().encode())
        atomic_write_bytes(self.root / "summary.csv", summary.getvalue().encode())


@dataclass
class DocumentTables:
    """One video's rows of the three tables."""

    summary: list[Any]
    segments: list[list[Any]]
    snippets: dict[str, list[Any]]


def document_tables(video_id: str, path: str, document: dict[str, Any]) -> DocumentTables:
    """The summary row, segment rows and snippet columns of one ``POST /score`` document.

    Snippet ``i`` spans frames ``[i * stride, min(i * stride + length, num_frames))`` of the feature spec; its
    times come from the document's frame timestamps (the end is the start of the frame after it).
    """
    scores = [float(score) for score in document["snippet_scores"]]
    threshold = document["threshold"]
    num_frames, fps = int(document["num_frames"]), float(document["fps"])
    timestamps = document["timestamps"]
    spec = document["feature_spec"]
    length, stride = int(spec["snippet_length"]), int(spec["stride"])

    def time_of(frame: int) -> float:
        if frame < num_frames:
            return float(timestamps[frame])
        return float(timestamps[-1]) + 1.0 / fps if timestamps else frame / fps

    segment_rows = [
        [video_id, index, segment["start_frame"], segment["end_frame"], segment["start_s"], segment["end_s"],
         segment["peak"], segment["mean"], threshold]
        for index, segment in enumerate(document["segments"])
    ]
    model = f"{document['model']['name']}@{document['model']['sha256'][:12]}"
    starts = [index * stride for index in range(len(scores))]
    ends = [min(start + length, num_frames) for start in starts]
    snippets = {
        "video_id": [video_id] * len(scores),
        "path": [path] * len(scores),
        "snippet": list(range(len(scores))),
        "start_frame": starts,
        "end_frame": ends,
        "start_s": [time_of(start) for start in starts],
        "end_s": [time_of(end) for end in ends],
        "score": scores,
        "model": [model] * len(scores),
        "spec_hash": [spec["hash"]] * len(scores),
    }
    summary = [video_id, path, document["duration_s"], fps, num_frames, len(scores),
               max(scores) if scores else "", len(segment_rows), "ok", ""]
    return DocumentTables(summary, segment_rows, snippets)


# --- the local engine: worker processes, each with its own Scorer -------------------------------------------------


def _worker_main(key: int, model_dir: str, device: str, threads: int, threshold: float | None, plots: bool,
                 timeout_s: float | None, tasks: Any, results: Any, parent_pid: int) -> None:
    """A worker process: load the model once, then score the videos it is handed until told to stop."""
    import torch

    from pipeline.scoring.scorer import Scorer

    torch.set_num_threads(threads)
    try:
        # decoding in-process: this worker is the isolation, killed by the pool when it hangs or overruns
        scorer = Scorer.from_model_dir(Path(model_dir), device=device, decode_timeout_s=None)
    except Exception as error:  # noqa: BLE001 - reported to the parent, which stops the run with it
        results.put(("load-error", key, f"{type(error).__name__}: {error}"))
        return
    results.put(("ready", key, None))
    while True:
        try:
            video = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:  # the coordinator died (e.g. SIGKILL): never outlive it
                return
            continue
        if video is None:
            return
        results.put(("done", key, score_one(scorer, video, threshold=threshold, plots=plots, timeout_s=timeout_s)))


@dataclass
class _Worker:
    key: int
    process: Any
    tasks: Any
    ready: bool = False
    video: VideoInput | None = None
    started: float = 0.0


class LocalPool:
    """N worker processes fed one video at a time; a worker past the timeout, or dead, is replaced."""

    def __init__(self, model_dir: Path, *, workers: int, device: str, threshold: float | None, plots: bool,
                 timeout_s: float | None):
        self._context = multiprocessing.get_context("spawn")
        self._results = self._context.Queue()
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self._args = (str(model_dir), device, max(1, cpus // workers), threshold, plots, timeout_s)
        # the worker stops a slow video itself at timeout_s; a decoder hung inside native code is killed later
        self._kill_after_s = None if timeout_s is None else timeout_s + KILL_GRACE_S
        self._spawned = 0
        self._workers: dict[int, _Worker] = {}
        for _ in range(workers):
            self._spawn()
        while not all(worker.ready for worker in self._workers.values()):
            self._handle(self._results.get())

    def _spawn(self) -> None:
        key, self._spawned = self._spawned, self._spawned + 1
        tasks = self._context.Queue()
        process = self._context.Process(
            target=_worker_main, args=(key, *self._args, tasks, self._results, os.getpid()), daemon=False
        )
        process.start()
        self._workers[key] = _Worker(key, process, tasks)

    def _handle(self, message: tuple[str, int, Any]) -> VideoOutcome | None:
        """Update the worker a message comes from; the outcome when it reports a scored video."""
        kind, key, payload = message
        worker = self._workers.get(key)
        if worker is None:  # a late word from a worker already replaced
            return None
        if kind == "load-error":
            self.close()
            raise BatchError(f"cannot load the model: {payload}")
        if kind == "ready":
            worker.ready = True
            return None
        worker.video = None
        return payload

    def run(self, videos: list[VideoInput], on_start: Callable[[VideoInput], None]) -> Iterator[VideoOutcome]:
        """Score ``videos``; yields outcomes as they finish (order of completion)."""
        pending = list(reversed(videos))
        while pending or any(worker.video for worker in self._workers.values()):
            for worker in self._workers.values():
                if worker.ready and worker.video is None and pending:
                    worker.video, worker.started = pending.pop(), time.monotonic()
                    on_start(worker.video)
                    worker.tasks.put(worker.video)
            try:
                outcome = self._handle(self._results.get(timeout=0.2))
            except queue.Empty:
                outcome = None
            if outcome is not None:
                yield outcome
            for worker in list(self._workers.values()):
                failure = self._check(worker)
                if failure is not None:
                    self._retire(worker)
                    self._spawn()
                    yield failure

    def _check(self, worker: _Worker) -> VideoOutcome | None:
        """A failure outcome when the worker's video ran past the timeout or the worker died, else None."""
        if worker.video is None:
            if worker.process.is_alive():
                return None
            self._retire(worker)  # died while loading or idle: start another
            self._spawn()
            return None
        elapsed = time.monotonic() - worker.started
        if self._kill_after_s is not None and elapsed > self._kill_after_s:
            return VideoOutcome.failure(worker.video, "timeout", f"no result after {elapsed:.0f} s: worker killed",
                                        elapsed)
        if not worker.process.is_alive():
            code = worker.process.exitcode
            return VideoOutcome.failure(worker.video, "worker-crashed",
                                        f"the worker process died while scoring it (exit code {code})", elapsed)
        return None

    def _retire(self, worker: _Worker) -> None:
        del self._workers[worker.key]
        worker.process.kill()
        worker.process.join()

    def close(self) -> None:
        for worker in self._workers.values():
            if worker.process.is_alive():
                worker.tasks.put(None)
        for worker in self._workers.values():
            worker.process.join(timeout=10)
            if worker.process.is_alive():
                worker.process.kill()


def run_batch(
    videos: list[VideoInput],
    model_dir: str | Path,
    out_dir: str | Path,
    *,
    engine: Engine = "local",
    threshold: float | None = None,
    plots: bool = False,
    workers: int = 1,
    retry_failed: bool = False,
    device: str = "auto",
    timeout_s: float | None = None,
    progress: bool = True,
) -> BatchReport:
    """Score every video not already finished in ``out_dir`` and rebuild the tables (module docstring)."""
    model_dir = Path(model_dir)
    if not (model_dir / "model.safetensors").exists():
        raise BatchError(f"{model_dir} is not a model directory (no model.safetensors)")
    if workers < 1:
        raise BatchError(f"--workers must be at least 1, got {workers}")
    outputs = BatchOutputs(Path(out_dir), model=model_identity(model_dir), threshold=threshold)
    outputs.check_paths(videos)
    todo = [
        video for video in videos
        if not outputs.is_done(video.video_id) and (retry_failed or not outputs.is_failed(video.video_id))
    ]
    report = BatchReport(Path(out_dir), total=len(videos), skipped=len(videos) - len(todo))
    if report.skipped:
        log.info("%d of %d videos already done (or failed: retry with --retry-failed)", report.skipped, len(videos))
    from pipeline.device import resolve_device

    device = str(resolve_device(device))
    if device.startswith("cuda") and workers > 1 and engine == "local":
        log.info("one process owns the GPU: --workers %d ignored on %s", workers, device)
        workers = 1
    run_id = uuid.uuid4().hex[:12]
    start = time.perf_counter()
    if todo:
        outcomes = _outcomes(engine, todo, model_dir, outputs, run_id, threshold=threshold, plots=plots,
                             workers=min(workers, len(todo)), device=device, timeout_s=timeout_s)
        _consume(outcomes, outputs, run_id, report, total=len(todo), progress=progress)
    outputs.rebuild_tables()
    report.seconds = time.perf_counter() - start
    report.failed = sorted(
        video.video_id for video in videos if outputs.is_failed(video.video_id)
    )
    return report


def _outcomes(engine: Engine, todo: list[VideoInput], model_dir: Path, outputs: BatchOutputs, run_id: str,
              **options: Any) -> Iterator[VideoOutcome]:
    if engine == "ray":
        from pipeline.jobs.ray_engine import ray_score_outcomes

        yield from ray_score_outcomes(todo, model_dir, **options)
        return
    if engine != "local":
        raise BatchError(f"unknown engine {engine!r}: use local or ray")
    pool = LocalPool(model_dir, workers=options["workers"], device=options["device"],
                     threshold=options["threshold"], plots=options["plots"], timeout_s=options["timeout_s"])
    try:
        yield from pool.run(todo, lambda video: outputs.started(video, run_id))
    finally:
        pool.close()


def _consume(outcomes: Iterable[VideoOutcome], outputs: BatchOutputs, run_id: str, report: BatchReport, *,
             total: int, progress: bool) -> None:
    """Record each outcome as it arrives, with a progress bar of videos, snippets/s and ETA."""
    from tqdm import tqdm

    start = time.perf_counter()
    with tqdm(total=total, unit="video", disable=not progress, dynamic_ncols=True) as bar:
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
