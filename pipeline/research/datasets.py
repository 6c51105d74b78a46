"""The data sets of the accuracy table: training videos, evaluation videos, ground truth, scored regions.

``AccuracyDataset`` is what a column needs (Ped2's constructions live in ``pipeline.research.ped2``); this module
also builds the synthetic sets at benchmark scale and opens public feature sets in their published layouts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanp_vad.pipeline.evaluation.evaluator import Evaluator, frame_metrics
from lanp_vad.pipeline.evaluation.events import EventVideo, event_counts, suggest_threshold, sweep
from lanp_vad.pipeline.evaluation.groundtruth import GroundTruth, VideoAnnotation, load_ground_truth
from lanp_vad.pipeline.features.featureset import FeatureSet, FeatureStore, open_feature_set
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.research.synthetic import Scale, describe_lengths, iter_synthetic_videos
from lanp_vad.pipeline.scoring.config import ScoringConfig
from lanp_vad.pipeline.scoring.result import event_segments
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH

EVENT_THRESHOLD = 0.5
"""The score threshold of the table's event metrics: the classifier's own decision boundary, the same for every
method (a model's calibrated threshold would make the methods' events incomparable). Scores that are not
probabilities (the naive contrast, the random scorer) are better compared by ``EVENT_FALSE_ALARM_BUDGET``."""
EVENT_FALSE_ALARM_BUDGET = 60.0
"""False alarms per hour (one a minute) allowed to the threshold-free event figure: the best event recall along
the threshold sweep within this budget (chosen on the test videos, like a best epoch)."""


def event_metrics(
    scores: dict[str, np.ndarray],
    ground_truth: GroundTruth,
    fps: float,
    threshold: float = EVENT_THRESHOLD,
    num_frames: dict[str, int | None] | None = None,
) -> dict[str, float]:
    """Event recall, precision and false alarms per hour of per-snippet scores at ``threshold`` (a model's own),
    and the best event recall within ``EVENT_FALSE_ALARM_BUDGET``, with the events ``lanp score`` makes by default
    (``ScoringConfig().segments``) and ``lanp evaluate``'s overlap rule; a video of known ``num_frames`` is cut
    to its own frames, as ``lanp evaluate`` does."""
    segments = ScoringConfig().segments

    def segmenter(frame_scores: np.ndarray, video_fps: float, threshold: float) -> list[tuple[int, int]]:
        return [(s.start_frame, s.end_frame)
                for s in event_segments(frame_scores, video_fps, threshold, segments, None)]

    videos = []
    for video_id, values in scores.items():
        count = (num_frames or {}).get(video_id)
        labels = ground_truth.frame_labels_for(video_id, len(values), num_frames=count)
        frames = np.repeat(np.asarray(values, dtype=np.float64), SNIPPET_LENGTH)[: count or labels.size]
        videos.append(EventVideo(video_id, frames, labels[: frames.size], fps))
    counts = event_counts(videos, threshold, segmenter).to_dict()
    metrics = {f"events:{name}": float(counts[name]) for name in ("event_recall", "event_precision",
                                                                   "false_alarms_per_hour") if counts[name] is not None}
    within = suggest_threshold(sweep(videos, segmenter), EVENT_FALSE_ALARM_BUDGET)
    recall = within.to_dict()["event_recall"] if within is not None else 0.0
    return {**metrics, "events:recall_within_budget": float(recall or 0.0)}


@dataclass(frozen=True)
class Region:
    """A part of every evaluation video scored on its own: snippet range per video, judged against ``truth``."""

    name: str
    truth: GroundTruth
    slices: dict[str, tuple[int, int]]


@dataclass
class AccuracyDataset:
    """Training videos (unlabeled), evaluation videos and their ground truth.

    ``ground_truth`` covers the evaluation videos (and the training videos where known: ``train_truth``); each
    of ``regions`` is also measured on its own (Ped2-long's test part) and becomes a column of its own.
    """

    name: str
    train: FeatureSet
    evaluation: FeatureSet
    ground_truth: GroundTruth
    description: str
    train_truth: bool = False
    regions: tuple[Region, ...] = ()
    overrides: tuple[str, ...] = ()
    fps: float | None = None  # known for real footage: the whole videos also get event metrics

    @property
    def columns(self) -> list[str]:
        """The table columns this data set fills: the whole evaluation videos, then each region."""
        return [self.name] + [f"{self.name} {region.name}" for region in self.regions]

    def measure(self, scores: dict[str, np.ndarray], *, threshold: float = EVENT_THRESHOLD) -> dict[str, float]:
        """Frame metrics of per-snippet scores of the evaluation videos (and event metrics at ``threshold`` when
        the frame rate is known); a region's keys are prefixed by it."""
        # the videos' own frame counts, where known, label the padded frames of the last snippet as the CLI's
        # ``lanp evaluate`` does (the ground truth's last label), so a cell reads like the user's figure
        counts = {entry.video_id: entry.num_frames for entry in self.evaluation}
        metrics = frame_metrics(scores, self.ground_truth, counts)
        if self.fps:
            metrics.update(event_metrics(scores, self.ground_truth, self.fps, threshold, counts))
        for region in self.regions:
            part = {video_id: values[slice(*region.slices[video_id])] for video_id, values in scores.items()}
            metrics.update({f"{region.name}:{key}": value for key, value in frame_metrics(part, region.truth).items()})
        return metrics

    def score(self, model: Any, device: str) -> dict[str, np.ndarray]:
        """Per-snippet scores of every evaluation video by ``model`` (a classifier or a ``Detector``)."""
        return Evaluator(self.evaluation, self.ground_truth, device).snippet_scores(model)

    def epoch_eval(
        self, device: str, *, every: int = 1, epochs: int | None = None
    ) -> Callable[[Any], dict[str, float]]:
        """The per-epoch evaluation hook: score every evaluation video with the model, then ``measure``.

        With ``every`` > 1 only every ``every``-th epoch and the last (``epochs``) are evaluated (an empty record
        otherwise; ``every`` 0: the last only): evaluation dominates the cost of a small model's epoch.
        """
        evaluator = Evaluator(self.evaluation, self.ground_truth, device)
        calls = 0

        def evaluate(model: Any) -> dict[str, float]:
            nonlocal calls
            calls += 1
            if (not every or calls % every) and calls != epochs:  # every=0: the last epoch only
                return {}
            return self.measure(evaluator.snippet_scores(model))

        return evaluate


def subset(features: FeatureSet, video_ids: Sequence[str]) -> FeatureSet:
    return FeatureSet([features.entry(video_id) for video_id in video_ids], features.spec, source=features.source)


def store_arrays(folder: Path, spec: FeatureSpec, arrays: dict[str, np.ndarray]) -> FeatureSet:
    """Write arrays into a feature store (skipping ones already there) and open it."""
    store = FeatureStore(folder, spec)
    for video_id, array in arrays.items():
        if not store.is_done(video_id):
            store.write(video_id, array)
    return open_feature_set(folder)


# ---------------------------------------------------------------------------------------------------------------
# Synthetic feature sets at benchmark scale.


@dataclass(frozen=True)
class SyntheticSpec:
    """A synthetic data set: scale, salience, scenes per video, dimension, and which share of videos to keep."""

    scale: Scale
    salience: float
    dim: int = 256
    scenes_per_video: int = 1
    keep_every: int = 1
    seed: int = 0
    length_independent: bool = False

    @property
    def name(self) -> str:
        scale = {"tiny": "tiny", "shanghaitech": "SH", "ucf-crime": "UCF"}[self.scale]
        scenes = f" {self.scenes_per_video} scenes" if self.scenes_per_video > 1 else ""
        subset = f" 1/{self.keep_every}" if self.keep_every > 1 else ""
        lengths = " len-indep" if self.length_independent else ""
        return f"syn-{scale}{subset}{lengths} s={self.salience:g}{scenes}"


def synthetic_dataset(spec: SyntheticSpec, cache_dir: Path, *, test_every: int = 4) -> AccuracyDataset:
    """Generate (or reuse) a synthetic set; every ``test_every``-th kept video is held out for evaluation.

    The cache folder is named by the spec and where the lengths came from, so a set generated from the fallback
    lengths (no split file) is never reused as one from the real split.
    """
    source = describe_lengths(spec.scale, seed=spec.seed)
    tag = hashlib.sha256(f"{spec!r} {source}".encode()).hexdigest()[:8]
    folder = cache_dir / "synthetic" / f"{spec.name.replace(' ', '_').replace('/', '-').replace('=', '')}-{tag}"
    annotations: dict[str, VideoAnnotation] = {}
    arrays: dict[str, np.ndarray] = {}
    videos = iter_synthetic_videos(
        scale=spec.scale, dim=spec.dim, salience=spec.salience, seed=spec.seed,
        scenes_per_video=spec.scenes_per_video, length_independent=spec.length_independent,
    )  # fmt: skip
    for index, video in enumerate(videos):
        if index % spec.keep_every:
            continue
        arrays[video.video_id] = video.features
        annotations[video.video_id] = VideoAnnotation(intervals=tuple(video.intervals), num_frames=video.num_frames)
    features = store_arrays(folder, FeatureSpec.external(spec.dim, name=f"synthetic-{spec.scale}"), arrays)
    ids = features.video_ids
    test_ids = ids[::test_every]
    train_ids = [video_id for video_id in ids if video_id not in set(test_ids)]
    train = subset(features, train_ids)
    return AccuracyDataset(
        spec.name,
        train,
        subset(features, test_ids),
        GroundTruth(annotations, "pad_last", source=f"synthetic {spec.name}"),
        f"synthetic {spec.scale}-scale features ({len(train_ids)} train / {len(test_ids)} test videos, "
        f"{spec.dim}-d, salience {spec.salience:g}, {spec.scenes_per_video} scene(s) per video"
        + (", lengths independent of labels)" if spec.length_independent else ")"),
        train_truth=True,
    )


def public_dataset(
    name: str,
    train: str | Path,
    test: str | Path,
    gt: str | Path,
    *,
    feature_dir: str | Path | None = None,
    gt_format: str = "auto",
    frames: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> AccuracyDataset:
    """A feature set in a public layout (RTFM lists, LANP splits + feature dir, feature folders) with its gt."""
    train_set = open_feature_set(train, feature_dir=feature_dir)
    test_set = open_feature_set(test, feature_dir=feature_dir)
    truth = load_ground_truth(gt, fmt=gt_format, frames=frames)
    return AccuracyDataset(
        name, train_set, test_set, truth, f"public features: train {train}, test {test}, gt {gt}",
        overrides=tuple(overrides),
    )  # fmt: skip
