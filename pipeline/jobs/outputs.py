"""The output folder of a batch job: per-video files, the fsynced manifest, and the tables rebuilt from them.

Layout::

    run.json            the model (its id and a hash of its files) the folder belongs to, the event settings every
                        result follows (``scoring``), and the last run's settings (``BatchConfig``)
    manifest.jsonl      one fsynced line per event (started / ok / failed); the latest line per video wins
    videos/<id>.json    the ``POST /score`` document of each scored video: the source of truth
    plots/<id>.png      score curves (``--plots``)
    events/<id>/<n>.jpg the peak frame of event n (``evidence.thumbnails``); ``<n>.mp4`` its clip (``--clips``)
    snippets.parquet    video_id, path, snippet, start_frame, end_frame, start_s, end_s, score, model, spec_hash
    segments.csv        video_id, segment, start_frame, end_frame, start_s, end_s, peak, peak_frame, mean, threshold
    summary.csv         one row per video: duration, fps, snippets, max score, segments, domain shift, warnings,
                        status, error

A run with other event settings (threshold, smoothing, minimum duration, gap merging) than the folder's first
recomputes the events of the finished videos from their JSONs (``resegment``, no decoding); a folder of another
model is refused.

A video's JSON (and plot) is written atomically before its ``ok`` line, so a killed run never leaves a result that
a rerun would take for finished. The three tables are rebuilt from the JSONs and the manifest at the end of every
run, sorted by video id, so they never hold duplicates and do not depend on the order in which workers finished.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lanp_vad.models.errors import ErrorKind, VideoError
from lanp_vad.pipeline.files import append_jsonl, atomic_write_bytes, read_jsonl, sha256_file
from lanp_vad.pipeline.jobs.config import BatchConfig, BatchError
from lanp_vad.pipeline.jobs.outcome import VideoOutcome
from lanp_vad.pipeline.scoring.result import model_id
from lanp_vad.pipeline.training.model_dir import MODEL_DIR_FILES, MODEL_FILE
from lanp_vad.pipeline.video.inputs import VideoInput

log = logging.getLogger(__name__)

RUN_FILE = "run.json"
SUMMARY_COLUMNS = (
    "video_id", "path", "duration_s", "fps", "num_frames", "snippets", "max_score", "num_segments", "domain_shift",
    "warnings", "status", "error",
)
SEGMENT_COLUMNS = ("video_id", "segment", "start_frame", "end_frame", "start_s", "end_s", "peak", "peak_frame", "mean",
                   "threshold")
SNIPPET_COLUMNS = (
    "video_id", "path", "snippet", "start_frame", "end_frame", "start_s", "end_s", "score", "model", "spec_hash",
)


def model_identity(model_dir: Path) -> dict[str, str]:
    """The model a folder belongs to: ``id``, the one id every result document and table names it by
    (``name@sha256[:12]`` of its weights), and ``files_sha256``, a short hash of all its files (weights, spec,
    config, metadata: a recalibrated model keeps its id but its scores do not compare), which ``run.json`` checks."""
    model_dir = Path(model_dir)
    digest = hashlib.sha256()
    for name in MODEL_DIR_FILES:
        path = model_dir / name
        if path.exists():
            digest.update(name.encode())
            digest.update(bytes.fromhex(sha256_file(path)))
    weights = model_dir / MODEL_FILE
    weights_sha256 = sha256_file(weights) if weights.exists() else digest.hexdigest()
    return {"id": model_id(model_dir.name, weights_sha256), "files_sha256": digest.hexdigest()[:16]}


class Manifest:
    """``manifest.jsonl``: append-only, fsynced, one JSON object a line; a torn last line is ignored."""

    def __init__(self, path: Path):
        self.path = path
        self.lines = [record for record in read_jsonl(path) if "video_id" in record]
        self.latest: dict[str, dict[str, Any]] = {}
        for record in self.lines:
            if record.get("status") in ("ok", "failed"):
                self.latest[record["video_id"]] = record

    def append(self, record: dict[str, Any]) -> None:
        record = {**record, "time": round(time.time(), 3)}
        append_jsonl(self.path, record)
        self.lines.append(record)
        if record.get("status") in ("ok", "failed"):
            self.latest[record["video_id"]] = record


class BatchOutputs:
    """The output folder: per-video files, the manifest, and the tables rebuilt from them."""

    def __init__(self, out_dir: Path, *, model: dict[str, str], config: BatchConfig):
        self.root = Path(out_dir)
        self.videos_dir = self.root / "videos"
        self.plots_dir = self.root / "plots"
        self.events_dir = self.root / "events"
        self.root.mkdir(parents=True, exist_ok=True)
        self.model, self.config = model, config
        self.scoring_changed = self._check_run()
        self.manifest = Manifest(self.root / "manifest.jsonl")

    def _check_run(self) -> bool:
        """Refuse a folder of another model (its scores would not compare); whether the event settings differ from
        the folder's (then ``resegment``). Workers, engine or timeout may change when a run is resumed."""
        run_file = self.root / RUN_FILE
        if not run_file.exists():
            return False
        recorded = json.loads(run_file.read_text())
        model = recorded.get("model")
        if not isinstance(model, dict) or model.get("files_sha256") != self.model["files_sha256"]:
            named = model.get("id") if isinstance(model, dict) else "another version of lanp-vad"
            raise BatchError(
                f"{self.root} holds results of model {named}, not of model {self.model['id']} (or of another "
                "version of its files): use another --out folder (nothing was changed)",
                kind=ErrorKind.CONFLICT,
            )
        return recorded.get("scoring") != self._scoring_record()

    def _scoring_record(self) -> dict[str, Any]:
        scoring = self.config.scoring
        return scoring.model_dump(include={"threshold", *scoring.segments.model_dump()})

    def save_run(self) -> None:
        """``run.json``: the model this folder belongs to, its event settings and the settings of the latest run."""
        run = {"model": self.model, "scoring": self._scoring_record(), "config": self.config.model_dump(mode="json")}
        atomic_write_bytes(self.root / RUN_FILE, json.dumps(run, indent=2).encode())

    def resegment(self, *, plots: bool | None = None, plot: Callable[[Any], bytes] | None = None) -> int:
        """Recompute the events of every finished video under ``config.scoring`` from its JSON (no decoding), its
        plot when it has one (or when ``plots``; ``plot(VideoScore)`` draws it, default ``plot_png``) and its
        evidence; then ``run.json``. Returns how many videos; the tables are rebuilt by ``rebuild_tables``."""
        from lanp_vad.pipeline.scoring.plot import plot_png
        from lanp_vad.pipeline.scoring.result import parse_document, resegment

        count = 0
        for video_id, record in sorted(self.manifest.latest.items()):
            if not self.is_done(video_id):
                continue
            path = self.videos_dir / f"{video_id}.json"
            document = resegment(json.loads(path.read_text()), self.config.scoring)
            atomic_write_bytes(path, json.dumps(document).encode())
            plot_path = self.plots_dir / f"{video_id}.png"
            if plots or (plots is None and plot_path.exists()):
                atomic_write_bytes(plot_path, (plot or plot_png)(parse_document(document)))
            self.write_evidence(video_id, record["path"], document)
            count += 1
        self.save_run()
        return count

    def write_evidence(self, video_id: str, source: str, document: dict[str, Any]) -> None:
        """``events/<id>/``: the evidence of a video's events (replacing older evidence of it), when asked for."""
        evidence = self.config.evidence
        if not (evidence.thumbnails or evidence.clips):
            return
        from lanp_vad.pipeline.scoring.evidence import write_evidence

        folder = self.events_dir / video_id
        for old in folder.glob("*"):
            old.unlink()
        try:
            write_evidence(document, source, folder, evidence)
        except (VideoError, OSError) as error:  # the scores stand; only the pictures are missing
            log.warning("%s: no event evidence: %s", video_id, error)

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
                    "use another --out folder or rename the file (nothing was changed)",
                    kind=ErrorKind.CONFLICT,
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
            self.write_evidence(outcome.video_id, outcome.path, outcome.document)
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
                        summary_writer.writerow([video_id, record["path"], *[""] * 8, "failed", error])
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
        [video_id, segment["index"], segment["start_frame"], segment["end_frame"], segment["start_s"],
         segment["end_s"], segment["peak"], segment["peak_frame"], segment["mean"], threshold]
        for segment in document["segments"]
    ]
    model = document["model"]["id"]
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
    shift = document.get("domain_shift")
    summary = [video_id, path, document["duration_s"], fps, num_frames, len(scores),
               max(scores) if scores else "", len(segment_rows), "" if shift is None else shift["score"],
               ";".join(warning["kind"] for warning in document.get("warnings", ())), "ok", ""]
    return DocumentTables(summary, segment_rows, snippets)
