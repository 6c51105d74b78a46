"""The batch jobs on Ray Data, for archives that outgrow one machine (``lanp score|extract --engine ray``).

A dataset of video paths goes through ``map_batches`` with a callable class that loads the model once per actor
(``workers`` actors, one GPU each when CUDA is present); the driver receives one row per video and writes it with
the same writer as the local engine, so both engines give the same files and the same numbers.

Actors are sized to fit a node, not the cluster: an actor reserves ``cpus_per_actor`` CPUs (default: the cluster's
CPUs shared out between the workers, but never more than the largest node has), and no more actors are asked for
than the nodes can hold. When not every actor has started within ``placement_timeout_s`` (the cluster is busy, or
a node went away) the job stops with an error that says what was asked for, instead of waiting in silence.

``ray.init()`` without arguments joins the cluster named by ``RAY_ADDRESS`` (or starts a local one); a job that
already called ``ray.init(...)`` keeps its instance. Every node needs this package installed. Ray is an optional
extra: it is imported only here, and its absence is reported with the install command.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lanp_vad.models.errors import ErrorKind, error_kind
from lanp_vad.pipeline.jobs.config import BatchConfig, BatchError, RayConfig
from lanp_vad.pipeline.jobs.outcome import VideoOutcome, score_one
from lanp_vad.pipeline.video.inputs import VideoInput

if TYPE_CHECKING:
    from lanp_vad.pipeline.features.archive import ExtractionReport
    from lanp_vad.pipeline.features.spec import FeatureSpec

INSTALL_HINT = "pip install 'lanp-vad[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, connected (``RAY_ADDRESS`` respected); a BatchError with the install hint if absent."""
    try:
        import ray
        import ray.data  # noqa: F401 - the [data] part of the extra
    except ImportError as error:
        raise BatchError(f"the ray engine needs Ray Data ({error.name} is missing): {INSTALL_HINT}",
                         kind=ErrorKind.INVALID_CONFIG) from error
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

    def __init__(self, model_dir: str, device: str, config_json: str, threads: int):
        import torch

        from lanp_vad.pipeline.scoring.scorer import Scorer

        torch.set_num_threads(threads)
        self.config = BatchConfig.model_validate_json(config_json)
        # with a timeout, the Scorer's decode watchdog (a child process per video) guards the actor against a
        # decoder hung in native code; without one, decoding stays in the actor (no process start per video)
        self.scorer = Scorer.from_model_dir(Path(model_dir), device=device, config=self.config.scoring.model_copy(
            update={"decode_timeout_s": self.config.timeout_s}))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [score_one(self.scorer, video, self.config) for video in _videos_of(batch)]
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


@dataclass(frozen=True)
class ActorPlan:
    """How many actors to ask for and what each reserves (``threads``: torch threads inside an actor)."""

    workers: int
    num_cpus: float
    num_gpus: int
    threads: int


def plan_actors(nodes: list[dict[str, float]], *, device: str, workers: int, ray_config: RayConfig) -> ActorPlan:
    """Size actors so that each fits on one of ``nodes`` (the alive nodes' resources) and ask for no more than
    fit at once. On CUDA: one GPU per actor. A BatchError when not even one actor fits anywhere."""
    if not nodes:
        raise BatchError("the Ray cluster has no alive node", kind=ErrorKind.NO_RESOURCES)
    largest = max(node.get("CPU", 0.0) for node in nodes)
    if device.startswith("cuda"):
        gpus = sum(int(node.get("GPU", 0)) for node in nodes)
        if gpus < 1:
            raise BatchError("--device cuda, but the Ray cluster has no GPU: use --device cpu or add GPU nodes",
                             kind=ErrorKind.NO_RESOURCES)
        per_actor = ray_config.cpus_per_actor or 1.0
        fits = [node for node in nodes if node.get("GPU", 0) >= 1 and node.get("CPU", 0.0) >= per_actor]
        capacity = sum(min(int(node["GPU"]), math.floor(node["CPU"] / per_actor)) for node in fits)
        gpu = 1
    else:
        total = sum(node.get("CPU", 0.0) for node in nodes)
        per_actor = ray_config.cpus_per_actor or max(1.0, min(float(largest), math.floor(total / workers)))
        capacity = sum(math.floor(node.get("CPU", 0.0) / per_actor) for node in nodes)
        gpu = 0
    if capacity < 1:
        sizes = ", ".join(f"{node.get('CPU', 0.0):g} CPU / {node.get('GPU', 0.0):g} GPU" for node in nodes)
        raise BatchError(
            f"no Ray node can hold one actor of {per_actor:g} CPU{' + 1 GPU' if gpu else ''} (nodes: {sizes}): "
            "lower --cpus-per-actor or add larger nodes", kind=ErrorKind.NO_RESOURCES,
        )
    return ActorPlan(workers=min(workers, capacity), num_cpus=per_actor, num_gpus=gpu,
                     threads=max(1, math.floor(per_actor)))


def _alive_nodes(ray: Any) -> list[dict[str, float]]:
    return [dict(node["Resources"]) for node in ray.nodes() if node.get("Alive")]


def _map_with_actors(ray: Any, videos: list[VideoInput], actor: type, plan: ActorPlan, ray_config: RayConfig,
                     arguments: dict[str, Any]) -> Any:
    """The dataset of ``videos`` mapped one video a batch through ``plan.workers`` actors of class ``actor``."""
    from ray.data import ActorPoolStrategy

    dataset = ray.data.from_items(_video_rows(videos), override_num_blocks=len(videos))
    dataset.context.enable_progress_bars = False  # the jobs show their own
    dataset.context.wait_for_min_actors_s = ray_config.placement_timeout_s
    return dataset.map_batches(
        actor, batch_size=1, batch_format="numpy", compute=ActorPoolStrategy(size=plan.workers),
        num_cpus=plan.num_cpus, num_gpus=plan.num_gpus,
        fn_constructor_kwargs={**arguments, "threads": plan.threads},
    )


def _rows(ray: Any, dataset: Any, plan: ActorPlan, ray_config: RayConfig) -> Iterator[dict[str, Any]]:
    """The dataset's rows; actors that could not all be started in time become a BatchError that says why."""
    try:
        yield from dataset.iter_rows()
    except Exception as error:
        chain: list[BaseException] = []
        cause: BaseException | None = error
        while cause is not None and len(chain) < 10:
            chain.append(cause)
            cause = cause.__cause__ or cause.__context__
        if not any(isinstance(item, ray.exceptions.GetTimeoutError) for item in chain):
            raise
        free = ray.available_resources()
        raise BatchError(
            f"the Ray cluster did not start {plan.workers} actor(s) of {plan.num_cpus:g} CPU"
            f"{' + 1 GPU' if plan.num_gpus else ''} within {ray_config.placement_timeout_s:g} s "
            f"(free now: {free.get('CPU', 0.0):g} CPU, {free.get('GPU', 0.0):g} GPU): lower --workers or "
            "--cpus-per-actor, or free the cluster",
            kind=ErrorKind.NO_RESOURCES,
        ) from error


def ray_score_outcomes(videos: list[VideoInput], model_dir: Path, config: BatchConfig, *,
                       workers: int) -> Iterator[VideoOutcome]:
    """Score ``videos`` on Ray Data with up to ``workers`` actors; yields one outcome per video as results come."""
    ray = require_ray()
    plan = plan_actors(_alive_nodes(ray), device=config.device, workers=workers, ray_config=config.ray)
    dataset = _map_with_actors(ray, videos, RayVideoScorer, plan, config.ray, {
        "model_dir": str(Path(model_dir).resolve()), "device": config.device, "config_json": config.model_dump_json(),
    })
    for row in _rows(ray, dataset, plan, config.ray):
        yield _outcome_of(row)


# --- feature extraction on Ray (``lanp extract --engine ray``) ----------------------------------------------------


class RayVideoExtractor:
    """A Ray Data actor: the extractor a spec describes, built once per actor, extracting one video at a time."""

    def __init__(self, spec_json: str, weights: str | None, device: str, batch_size: int, timeout_s: float | None,
                 threads: int, runtime: str = "auto"):
        import torch

        from lanp_vad.pipeline.features.extractor import FeatureExtractor
        from lanp_vad.pipeline.features.spec import FeatureSpec

        torch.set_num_threads(threads)
        spec = FeatureSpec.model_validate_json(spec_json)
        self.extractor = FeatureExtractor.from_spec(spec, weights=weights, device=device, batch_size=batch_size,
                                                    runtime=runtime, what="archive")
        self.timeout_s = timeout_s

    def _extract(self, video: VideoInput) -> dict[str, Any]:
        row: dict[str, Any] = {"video_id": video.video_id, "path": str(video.path), "status": "failed",
                               "features": b"", "info": "", "error_kind": "", "error": ""}
        try:
            extracted = self.extractor.extract_video(video.path, timeout_s=self.timeout_s)
        except Exception as error:  # noqa: BLE001 - one bad video must not stop an archive
            return {**row, "error_kind": str(error_kind(error)), "error": str(error) or type(error).__name__}
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
    runtime: str = "auto",
    timeout_s: float | None = 600.0,
    ray_config: RayConfig | None = None,
    progress: bool = True,
) -> ExtractionReport:
    """``extract_archive`` on Ray Data: the same resumable feature store, filled by ``workers`` actors.

    Each actor rebuilds the extractor from ``spec`` (as the Scorer does), so every node makes the same features;
    the driver writes the store (validated arrays, atomic files, fsynced manifest).
    """
    from lanp_vad.pipeline.device import resolve_device
    from lanp_vad.pipeline.features.archive import ExtractionReport
    from lanp_vad.pipeline.features.featureset import FeatureStore
    from lanp_vad.pipeline.progress import progress_bar
    from lanp_vad.pipeline.video.inputs import expand_inputs

    videos = expand_inputs([str(item) for item in inputs])
    store = FeatureStore(out_dir, spec)
    report = ExtractionReport(Path(out_dir))
    todo = [video for video in videos if not store.is_done(video.video_id)]
    report.skipped = [video.video_id for video in videos if store.is_done(video.video_id)]
    started = time.perf_counter()
    if todo:
        ray = require_ray()
        ray_config = ray_config or RayConfig()
        device = str(resolve_device(device))
        plan = plan_actors(_alive_nodes(ray), device=device, workers=workers, ray_config=ray_config)
        dataset = _map_with_actors(ray, todo, RayVideoExtractor, plan, ray_config, {
            "spec_json": spec.model_dump_json(), "weights": weights, "device": device, "batch_size": batch_size,
            "runtime": runtime,
            "timeout_s": timeout_s,
        })
        with progress_bar(total=len(todo), desc="extract (ray)", unit="video", enabled=progress) as bar:
            for row in _rows(ray, dataset, plan, ray_config):
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
