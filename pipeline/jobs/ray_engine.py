"""The batch jobs on Ray Data, for archives that outgrow one machine (``lanp score|extract --engine ray``).

A dataset of video paths goes through ``map_batches`` with a callable class that loads the model once per actor
(``workers`` actors, one GPU each when CUDA is present); the driver receives one row per video and writes it with
the same writer as the local engine, so both engines give the same files and the same numbers.

``ray.init()`` without arguments joins the cluster named by ``RAY_ADDRESS`` (or starts a local one); a job that
already called ``ray.init(...)`` keeps its instance. Every node needs this package installed. Ray is an optional
extra: it is imported only here, and its absence is reported with the install command.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.jobs.batch import BatchError, VideoOutcome, score_one
from pipeline.video.inputs import VideoInput

if TYPE_CHECKING:
    from pipeline.features.archive import ExtractionReport
    from pipeline.features.spec import FeatureSpec

INSTALL_HINT = "pip install 'lanp-vad[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, connected (``RAY_ADDRESS`` respected); a BatchError with the install hint if absent."""
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] part of the extra
    except ImportError as error:
        raise BatchError(f"the ray engine needs Ray Data ({error.name} is missing): {INSTALL_HINT}") from error
    if not ray.is_initialized():
        ray.init()
    return ray


def _video_rows(videos: list[VideoInput]) -> list[dict[str, Any]]:
    return [{"video_id": video.video_id, "path": str(video.path), "is_frame_folder": video.is_frame_folder}
            for video in videos]


def _videos_of(batch: dict[str, np.ndarray]) -> list[VideoInput]:
    return [VideoInput(str(video_id), Path(str(path)), bool(frames))
            for video_id, path, frames in zip(batch["video_id"], batch["path"], batch["is_frame_folder"], strict=True)]


class RayVideoScorer:
    """A Ray Data actor: one Scorer per actor, scoring the videos of each batch one by one."""

    def __init__(self, model_dir: str, device: str, threshold: float | None, plots: bool, timeout_s: float | None,
                 threads: int):
        import torch

        from pipeline.scoring.scorer import Scorer

        torch.set_num_threads(threads)
        # with a timeout, the Scorer's decode watchdog (a child process per video) guards the actor against a
        # decoder hung in native code; without one, decoding stays in the actor (no process start per video)
        self.scorer = Scorer.from_model_dir(Path(model_dir), device=device, decode_timeout_s=timeout_s)
        self.options = {"threshold": threshold, "plots": plots, "timeout_s": timeout_s}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [score_one(self.scorer, video, **self.options) for video in _videos_of(batch)]
        return {
            "video_id": np.array([o.video_id for o in outcomes], dtype=object),
            "path": np.array([o.path for o in outcomes], dtype=object),
            "status": np.array([o.status for o in outcomes], dtype=object),
            "document": np.array([json.dumps(o.document) if o.document else "" for o in outcomes], dtype=object),
            "plot_png": np.array([o.plot_png or b"" for o in outcomes], dtype=object),
            "error_kind": np.array([o.error_kind or "" for o in outcomes], dtype=object),
            "error": np.array([o.error or "" for o in outcomes], dtype=object),
            "num_snippets": np.array([o.num_snippets for o in outcomes], dtype=np.int64),
            "seconds": np.array([o.seconds for o in outcomes], dtype=np.float64),
        }


def _outcome_of(row: dict[str, Any]) -> VideoOutcome:
    return VideoOutcome(
        video_id=row["video_id"], path=row["path"], status=row["status"],
        document=json.loads(row["document"]) if row["document"] else None,
        plot_png=bytes(row["plot_png"]) or None,
        error_kind=row["error_kind"] or None, error=row["error"] or None,
        num_snippets=int(row["num_snippets"]), seconds=float(row["seconds"]),
    )


def _actor_resources(ray: Any, device: str, workers: int) -> dict[str, Any]:
    """Actor count and resources: one GPU per actor on CUDA (no more actors than the cluster's GPUs, which
    would wait forever); on CPU the cluster's CPUs shared out between the actors."""
    if device.startswith("cuda"):
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if gpus < 1:
            raise BatchError("--device cuda, but the Ray cluster has no GPU: use --device cpu or add GPU nodes")
        workers = min(workers, gpus)
        return {"workers": workers, "num_gpus": 1, "num_cpus": 1,
                "threads": max(1, (os.cpu_count() or 1) // workers)}
    cpus = int(ray.cluster_resources().get("CPU", 1))
    per_actor = max(1, cpus // workers)
    return {"workers": workers, "num_gpus": 0, "num_cpus": per_actor, "threads": per_actor}


def ray_score_outcomes(
    videos: list[VideoInput],
    model_dir: Path,
    *,
    threshold: float | None,
    plots: bool,
    workers: int,
    device: str,
    timeout_s: float | None,
) -> Iterator[VideoOutcome]:
    """Score ``videos`` on Ray Data with ``workers`` actors; yields one outcome per video as results stream in."""
    ray = require_ray()
    from ray.data import ActorPoolStrategy, DataContext

    DataContext.get_current().enable_progress_bars = False  # the batch job shows its own
    resources = _actor_resources(ray, device, workers)
    dataset = ray.data.from_items(_video_rows(videos), override_num_blocks=len(videos)).map_batches(
        RayVideoScorer,
        batch_size=1,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=resources["workers"]),
        num_cpus=resources["num_cpus"],
        num_gpus=resources["num_gpus"],
        fn_constructor_kwargs={"model_dir": str(Path(model_dir).resolve()), "device": device,
                               "threshold": threshold, "plots": plots, "timeout_s": timeout_s,
                               "threads": resources["threads"]},
    )
    for row in dataset.iter_rows():
        yield _outcome_of(row)


# --- feature extraction on Ray (``lanp extract --engine ray``) ----------------------------------------------------


class RayVideoExtractor:
    """A Ray Data actor: the extractor a spec describes, built once per actor, extracting one video at a time."""

    def __init__(self, spec_json: str, weights: str | None, device: str, batch_size: int, timeout_s: float | None,
                 threads: int):
        import torch

        from pipeline.features.extractor import FeatureExtractor
        from pipeline.features.spec import FeatureSpec

        torch.set_num_threads(threads)
        spec = FeatureSpec.model_validate_json(spec_json)
        self.extractor = FeatureExtractor.from_spec(spec, weights=weights, device=device, batch_size=batch_size,
                                                    what="archive")
        self.timeout_s = timeout_s

    def _extract(self, video: VideoInput) -> dict[str, Any]:
        from pipeline.video.decode import VideoError

        row: dict[str, Any] = {"video_id": video.video_id, "path": str(video.path), "status": "failed",
                               "features": b"", "info": "", "error_kind": "", "error": ""}
        try:
            extracted = self.extractor.extract_video(video.path, timeout_s=self.timeout_s)
        except VideoError as error:
            return {**row, "error_kind": error.kind, "error": str(error)}
        except Exception as error:  # noqa: BLE001 - one bad video must not stop an archive
            return {**row, "error_kind": type(error).__name__, "error": str(error) or type(error).__name__}
        buffer = io.BytesIO()
        np.save(buffer, extracted.features)
        info = extracted.info
        details = {"num_frames": info.num_frames, "fps": info.fps, "duration_s": info.duration_s,
                   "width": info.width, "height": info.height, "backend": info.backend}
        return {**row, "status": "ok", "features": buffer.getvalue(), "info": json.dumps(details)}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = [self._extract(video) for video in _videos_of(batch)]
        return {key: np.array([row[key] for row in rows], dtype=object) for key in rows[0]}


def ray_extract_archive(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    spec: FeatureSpec,
    weights: str | None,
    workers: int,
    device: str = "auto",
    batch_size: int = 16,
    timeout_s: float | None = 600.0,
    progress: bool = True,
) -> ExtractionReport:
    """``extract_archive`` on Ray Data: the same resumable feature store, filled by ``workers`` actors.

    Each actor rebuilds the extractor from ``spec`` (as the Scorer does), so every node makes the same features;
    the driver writes the store (validated arrays, atomic files, fsynced manifest).
    """
    from tqdm import tqdm

    from pipeline.device import resolve_device
    from pipeline.features.archive import ExtractionReport
    from pipeline.features.featureset import FeatureStore
    from pipeline.video.inputs import expand_inputs

    videos = expand_inputs([str(item) for item in inputs])
    store = FeatureStore(out_dir, spec)
    report = ExtractionReport(Path(out_dir))
    todo = [video for video in videos if not store.is_done(video.video_id)]
    report.skipped = [video.video_id for video in videos if store.is_done(video.video_id)]
    started = time.perf_counter()
    if todo:
        ray = require_ray()
        from ray.data import ActorPoolStrategy, DataContext

        DataContext.get_current().enable_progress_bars = False
        device = str(resolve_device(device))
        resources = _actor_resources(ray, device, workers)
        dataset = ray.data.from_items(_video_rows(todo), override_num_blocks=len(todo)).map_batches(
            RayVideoExtractor,
            batch_size=1,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=resources["workers"]),
            num_cpus=resources["num_cpus"],
            num_gpus=resources["num_gpus"],
            fn_constructor_kwargs={"spec_json": spec.model_dump_json(), "weights": weights, "device": device,
                                   "batch_size": batch_size, "timeout_s": timeout_s,
                                   "threads": resources["threads"]},
        )
        with tqdm(total=len(todo), unit="video", desc="extract (ray)", disable=not progress) as bar:
            for row in dataset.iter_rows():
                if row["status"] == "ok":
                    features = np.load(io.BytesIO(row["features"]), allow_pickle=False)
                    details = json.loads(row["info"])
                    store.write(row["video_id"], features, source=row["path"], **details)
                    report.extracted.append(row["video_id"])
                    report.snippets += int(features.shape[0])
                    report.frames += details["num_frames"]
                    report.video_seconds += details["duration_s"]
                else:
                    store.fail(row["video_id"], row["error"], error_kind=row["error_kind"], source=row["path"])
                    report.failed[row["video_id"]] = f"{row['error_kind']}: {row['error']}"
                bar.update(1)
    report.seconds = time.perf_counter() - started
    return report
