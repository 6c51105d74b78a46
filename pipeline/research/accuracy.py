"""The accuracy table: LANP, its ablations and its peers on the same data, through the same evaluator.

Rows are methods (LANP presets, every affinity variant, the paper's ablations, C2FPL, GCL, a random scorer),
columns are data sets (UCSD Ped2 from real video, Ped2-long, synthetic sets at benchmark scale, any public feature
set given by the user). Each cell is the mean and std over seeds of the frame ROC-AUC at the final epoch (honest)
and at the best epoch (chosen on the test set, as the papers report), AP, and snippet pseudo-label
precision/recall on the training videos where their ground truth is known. Output: Markdown and JSON.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models.config import LANPConfig, apply_overrides, preset
from models.errors import ErrorKind, UserError
from pipeline.evaluation.evaluator import Evaluator, frame_metrics
from pipeline.evaluation.groundtruth import SNIPPET_LENGTH, GroundTruth, VideoAnnotation, load_ground_truth
from pipeline.features.featureset import FeatureSet, FeatureStore, open_feature_set
from pipeline.features.spec import FeatureSpec
from pipeline.research.baselines import run_baseline
from pipeline.research.synthetic import Scale, iter_synthetic_videos
from pipeline.training.trainer import train_lanp

log = logging.getLogger(__name__)

MethodKind = Literal["lanp", "c2fpl", "gcl", "random"]
AFFINITIES = ("gaussian", "rms", "cosine", "adaptive")


class AccuracyError(UserError):
    """A data set or method the table cannot be built from; names the item."""

    kind = ErrorKind.INVALID_ARGUMENT


@dataclass(frozen=True)
class MethodRow:
    """One row: a method and, for LANP, the config overrides on top of the row's preset."""

    name: str
    kind: MethodKind
    preset: str = "reference"
    overrides: tuple[str, ...] = ()
    group: str = ""


def method_rows(
    *, base: Sequence[str] = (), h_values: Sequence[float] = (0.05, 0.2, 0.5), include: str = "all"
) -> list[MethodRow]:
    """The table's rows. ``base`` overrides apply to every ablation row (the configuration being ablated).

    ``include``: ``all`` (every row), ``affinity`` (presets, affinity variants, baselines), ``ablation`` (the
    ablation rows and the random scorer) or ``core`` (presets, the scale-free variants and the baselines: the CI
    configuration).
    """
    base = tuple(base)
    rows = [
        MethodRow("LANP reference code (rms, UCF)", "lanp", "reference", group="presets"),
        MethodRow("LANP paper text (gaussian)", "lanp", "paper", group="presets"),
    ]
    variants = [
        MethodRow(
            f"LANP affinity={affinity}{' +standardize' if standardize else ''}",
            "lanp",
            overrides=(f"propagation.affinity={affinity}", f"propagation.standardize={str(standardize).lower()}"),
            group="affinity",
        )
        for standardize in (False, True)
        for affinity in AFFINITIES
        if (affinity, standardize) != ("rms", False)  # that is the reference row
    ]
    if include == "core":
        variants = [row for row in variants if "adaptive" in row.name]
    rows += variants
    if include in ("all", "ablation"):
        suffix = f" [base: {', '.join(base)}]" if base else ""

        def ablation(name: str, *overrides: str) -> MethodRow:
            return MethodRow(f"{name}{suffix}", "lanp", overrides=base + overrides, group="ablation")

        rows += [
            ablation("ablation: base (prior seeds, propagate, T&F, reweight, h=0.1)"),
            ablation("ablation: seeds random", "propagation.seeds=random"),
            ablation("ablation: seeds data-driven", "propagation.seeds=data_driven"),
            ablation("ablation: direct comparison", "propagation.method=direct"),
            ablation("ablation: similarity T only", "propagation.feature_similarity=false"),
            ablation("ablation: similarity F only", "propagation.temporal=false"),
            ablation("ablation: no re-weighting", "reweight.enabled=false"),
            *(ablation(f"ablation: h={h:g}", f"pseudo.confident_normal_ratio={h}") for h in h_values),
        ]
    rows += [
        MethodRow("C2FPL", "c2fpl", group="baselines"),
        MethodRow("GCL-style", "gcl", group="baselines"),
        MethodRow("random scorer", "random", group="baselines"),
    ]
    if include == "ablation":
        rows = [row for row in rows if row.group == "ablation" or row.kind == "random"]
    return rows


@dataclass
class AccuracyDataset:
    """Training videos (unlabeled), evaluation videos and their ground truth.

    ``ground_truth`` covers the evaluation videos (and the training videos where known: ``train_truth``);
    ``evaluation_slices`` restricts scoring to a snippet range of each evaluation video (Ped2-long), judged against
    ``evaluation_truth`` keyed by the same ids.
    """

    name: str
    train: FeatureSet
    evaluation: FeatureSet
    ground_truth: GroundTruth
    description: str
    train_truth: bool = False
    evaluation_truth: GroundTruth | None = None
    evaluation_slices: dict[str, tuple[int, int]] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()

    def measure(self, scores: dict[str, np.ndarray]) -> dict[str, float]:
        """Frame metrics of per-snippet scores of the evaluation videos."""
        if self.evaluation_slices:
            scores = {video_id: values[slice(*self.evaluation_slices[video_id])] for video_id, values in scores.items()}
        return frame_metrics(scores, self.evaluation_truth or self.ground_truth)

    def epoch_eval(
        self, device: str, *, every: int = 1, epochs: int | None = None
    ) -> Callable[[Any], dict[str, float]]:
        """The per-epoch evaluation hook: score every evaluation video with the model, then ``measure``.

        With ``every`` > 1 only every ``every``-th epoch and the last (``epochs``) are evaluated (an empty record
        otherwise): evaluation dominates the cost of a small model's epoch.
        """
        evaluator = Evaluator(self.evaluation, self.ground_truth, device)
        calls = 0

        def evaluate(model: Any) -> dict[str, float]:
            nonlocal calls
            calls += 1
            if calls % every and calls != epochs:
                return {}
            return self.measure(evaluator.snippet_scores(model))

        return evaluate


def _subset(features: FeatureSet, video_ids: Sequence[str]) -> FeatureSet:
    return FeatureSet([features.entry(video_id) for video_id in video_ids], features.spec, source=features.source)


def _store_arrays(folder: Path, spec: FeatureSpec, arrays: dict[str, np.ndarray]) -> FeatureSet:
    """Write arrays into a feature store (skipping ones already there) and open it."""
    store = FeatureStore(folder, spec)
    for video_id, array in arrays.items():
        if not store.is_done(video_id):
            store.write(video_id, array)
    return open_feature_set(folder)


# ---------------------------------------------------------------------------------------------------------------
# UCSD Ped2 from real video.


def extract_ped2(data_dir: Path, cache_dir: Path, *, device: str = "cpu") -> FeatureSet:
    """EfficientNet-Lite0 (offline ImageNet weights) features of all 28 Ped2 clips, cached as a feature store."""
    from pipeline.features.extract import FeatureExtractor

    videos = data_dir / "ucsd-ped2" / "videos"
    sources = {
        f"{split}_{path.stem}": path for split in ("train", "test") for path in sorted((videos / split).glob("*.mp4"))
    }
    if len(sources) != 28:
        raise AccuracyError(f"expected the 28 UCSD Ped2 clips under {videos}, found {len(sources)}")
    folder = cache_dir / "ped2-efficientnet_lite0"
    extractor = FeatureExtractor("efficientnet_lite0", weights="pretrained", device=device)
    store = FeatureStore(folder, extractor.spec)
    for video_id, path in sources.items():
        if store.is_done(video_id):
            continue
        log.info("extracting %s", path)
        extracted = extractor.extract_video(path)
        store.write(video_id, extracted.features, source=str(path), num_frames=extracted.info.num_frames)
    return open_feature_set(folder)


def _ped2_truth(data_dir: Path, train_ids: Sequence[str], test_ids: Sequence[str]) -> GroundTruth:
    """ped2.mat intervals keyed by ``test_NN``, plus the all-normal training clips (``train_NN``)."""
    official = load_ground_truth(data_dir / "ucsd-ped2" / "ped2.mat", fmt="ped2")
    annotations = {video_id: official.annotations[video_id.split("_")[1]] for video_id in test_ids}
    annotations.update({video_id: VideoAnnotation() for video_id in train_ids})
    return GroundTruth(annotations, "pad_last", source=official.source)


def ped2_datasets(data_dir: Path, cache_dir: Path, *, device: str = "cpu") -> list[AccuracyDataset]:
    """Ped2 (train on all 28 clips unlabeled, evaluate the 12 test clips) and Ped2-long.

    Ped2-long: each test clip's features are placed between the features of two normal training clips (the same
    camera), so the video starts and ends with ordinary activity as real footage does; the model trains on the
    16 training clips plus the 12 long videos and is evaluated on the test part only. Concatenating features
    equals concatenating the decoded clips here because every snippet is 16 frames of one clip either way (the
    last snippet of a clip is padded with its last frame instead of running into the next clip).
    """
    features = extract_ped2(data_dir, cache_dir, device=device)
    train_ids = [video_id for video_id in features.video_ids if video_id.startswith("train_")]
    test_ids = [video_id for video_id in features.video_ids if video_id.startswith("test_")]
    truth = _ped2_truth(data_dir, train_ids, test_ids)
    overrides = ("train.drop_last=false", f"train.batch_size={len(features)}")
    ped2 = AccuracyDataset(
        "Ped2",
        features,
        _subset(features, test_ids),
        truth,
        "UCSD Ped2 real video, EfficientNet-Lite0 features; train: all 28 clips unlabeled; test: 12 clips",
        train_truth=True,
        overrides=overrides,
    )
    long_arrays, annotations, evaluation_truth, slices = {}, {}, {}, {}
    for index, test_id in enumerate(test_ids):
        before, after = train_ids[(2 * index) % len(train_ids)], train_ids[(2 * index + 1) % len(train_ids)]
        parts = [features.load(before), features.load(test_id), features.load(after)]
        long_id = f"long_{test_id.split('_')[1]}"
        long_arrays[long_id] = np.concatenate(parts)
        offset = SNIPPET_LENGTH * len(parts[0])
        intervals = truth.annotations[test_id].intervals
        annotations[long_id] = VideoAnnotation(intervals=tuple((s + offset, e + offset) for s, e in intervals))
        evaluation_truth[long_id] = VideoAnnotation(intervals=intervals)
        slices[long_id] = (len(parts[0]), len(parts[0]) + len(parts[1]))
    long_set = _store_arrays(cache_dir / "ped2-long-efficientnet_lite0", features.spec, long_arrays)
    annotations.update({video_id: VideoAnnotation() for video_id in train_ids})
    combined = FeatureSet(
        [features.entry(video_id) for video_id in train_ids] + list(long_set), features.spec, source="ped2-long"
    )
    ped2_long = AccuracyDataset(
        "Ped2-long",
        combined,
        long_set,
        GroundTruth(annotations, "pad_last", source="ped2.mat shifted into Ped2-long"),
        "each Ped2 test clip between two normal training clips (features concatenated); scored on the test part",
        train_truth=True,
        evaluation_truth=GroundTruth(evaluation_truth, "pad_last", source="ped2.mat"),
        evaluation_slices=slices,
        overrides=("train.drop_last=false", f"train.batch_size={len(combined)}"),
    )
    return [ped2, ped2_long]


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

    @property
    def name(self) -> str:
        scale = {"tiny": "tiny", "shanghaitech": "SH", "ucf-crime": "UCF"}[self.scale]
        scenes = f" {self.scenes_per_video} scenes" if self.scenes_per_video > 1 else ""
        subset = f" 1/{self.keep_every}" if self.keep_every > 1 else ""
        return f"syn-{scale}{subset} s={self.salience:g}{scenes}"


def synthetic_dataset(spec: SyntheticSpec, cache_dir: Path, *, test_every: int = 4) -> AccuracyDataset:
    """Generate (or reuse) a synthetic set; every ``test_every``-th kept video is held out for evaluation."""
    folder = cache_dir / "synthetic" / spec.name.replace(" ", "_").replace("/", "-").replace("=", "")
    annotations: dict[str, VideoAnnotation] = {}
    arrays: dict[str, np.ndarray] = {}
    videos = iter_synthetic_videos(
        scale=spec.scale, dim=spec.dim, salience=spec.salience, seed=spec.seed,
        scenes_per_video=spec.scenes_per_video,
    )  # fmt: skip
    for index, video in enumerate(videos):
        if index % spec.keep_every:
            continue
        arrays[video.video_id] = video.features
        annotations[video.video_id] = VideoAnnotation(intervals=tuple(video.intervals), num_frames=video.num_frames)
    features = _store_arrays(folder, FeatureSpec.external(spec.dim, name=f"synthetic-{spec.scale}"), arrays)
    ids = features.video_ids
    test_ids = ids[::test_every]
    train_ids = [video_id for video_id in ids if video_id not in set(test_ids)]
    train = _subset(features, train_ids)
    return AccuracyDataset(
        spec.name,
        train,
        _subset(features, test_ids),
        GroundTruth(annotations, "pad_last", source=f"synthetic {spec.name}"),
        f"synthetic {spec.scale}-scale features ({len(train_ids)} train / {len(test_ids)} test videos, "
        f"{spec.dim}-d, salience {spec.salience:g}, {spec.scenes_per_video} scene(s) per video)",
        train_truth=True,
        overrides=("train.drop_last=false", f"train.batch_size={min(30, len(train_ids))}"),
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


# ---------------------------------------------------------------------------------------------------------------
# Running the table.


def lanp_config(row: MethodRow, dataset: AccuracyDataset, *, seed: int, epochs: int | None) -> LANPConfig:
    """The row's preset with the data set's overrides (batching), the row's overrides, the seed and epochs."""
    assignments = [*dataset.overrides, *row.overrides, f"train.seed={seed}", "train.device=cpu"]
    if epochs is not None:
        assignments.append(f"train.epochs={epochs}")
    return apply_overrides(preset(row.preset), assignments)


def run_cell(
    row: MethodRow,
    dataset: AccuracyDataset,
    seed: int,
    *,
    epochs: int | None = None,
    eval_every: int = 1,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train and evaluate one method on one data set with one seed; returns a JSON-able record.

    ``epochs`` (None: the preset's 300) and ``eval_every`` apply to LANP; the baselines keep their own schedules
    (C2FPL 20 epochs, GCL 15) and are evaluated after every epoch.
    """
    started = time.perf_counter()
    pseudo: dict[str, float] | None = None
    if row.kind == "lanp":
        config = lanp_config(row, dataset, seed=seed, epochs=epochs)
        result = train_lanp(
            dataset.train,
            config,
            ground_truth=dataset.ground_truth if dataset.train_truth else None,
            progress=False,
            eval_fn=dataset.epoch_eval(device, every=eval_every, epochs=config.train.epochs),
        )
        history = [record for record in result.history if "auc_roc" in record]
        quality = result.metadata["pseudo_labels"].get("vs_ground_truth")
        pseudo = quality["snippet"] if quality else None
    else:
        outcome = run_baseline(
            row.kind,
            dataset.train,
            dataset.evaluation,
            seed=seed,
            ground_truth=dataset.ground_truth if dataset.train_truth else None,
            eval_fn=dataset.epoch_eval(device),
            measure=dataset.measure,
            device=device,
        )
        history, pseudo = outcome.history, outcome.pseudo_quality
    final = history[-1]
    best = max(history, key=lambda record: record["auc_roc"])
    return {
        "dataset": dataset.name,
        "method": row.name,
        "kind": row.kind,
        "seed": seed,
        "final": {"auc_roc": final["auc_roc"], "ap": final["ap"], "epoch": int(final.get("epoch", 1))},
        "best": {"auc_roc": best["auc_roc"], "ap": best["ap"], "epoch": int(best.get("epoch", 1))},
        "pseudo_labels": pseudo,
        "seconds": round(time.perf_counter() - started, 2),
    }


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """method -> dataset -> mean/std of each metric over seeds (and the seed count)."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault((record["method"], record["dataset"]), []).append(record)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for (method, dataset), all_runs in grouped.items():
        runs = [run for run in all_runs if "error" not in run]
        if not runs:
            summary.setdefault(method, {})[dataset] = {"seeds": 0, "error": all_runs[0]["error"]}
            continue
        values = {
            "auc_final": [run["final"]["auc_roc"] for run in runs],
            "auc_best": [run["best"]["auc_roc"] for run in runs],
            "ap_final": [run["final"]["ap"] for run in runs],
            "pl_precision": [run["pseudo_labels"]["precision"] for run in runs if run["pseudo_labels"]],
            "pl_recall": [run["pseudo_labels"]["recall"] for run in runs if run["pseudo_labels"]],
        }
        summary.setdefault(method, {})[dataset] = {
            "seeds": len(runs),
            **{
                name: {"mean": float(np.mean(series)), "std": float(np.std(series))}
                for name, series in values.items()
                if series
            },
        }
    return summary


_TABLES = {
    "auc_final": "Frame ROC-AUC, final epoch (%)",
    "auc_best": "Frame ROC-AUC, best epoch (%) — chosen on the test set, as the papers report",
    "ap_final": "Frame AP (average precision), final epoch (%)",
    "pl_precision": "Snippet pseudo-label precision on the training videos (%)",
    "pl_recall": "Snippet pseudo-label recall on the training videos (%)",
}


def markdown_tables(summary: dict[str, dict[str, dict[str, Any]]], datasets: Sequence[str]) -> str:
    """One Markdown table per metric: rows = methods, columns = data sets, cells = mean ± std over seeds."""
    blocks = []
    for metric, title in _TABLES.items():
        lines = [f"### {title}", "", "| method | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
        for method, cells in summary.items():
            row = []
            for dataset in datasets:
                cell = cells.get(dataset, {})
                stats = cell.get(metric)
                failed = "failed (see JSON)" if "error" in cell else "—"
                row.append(f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}" if stats else failed)
            lines.append(f"| {method} | " + " | ".join(row) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


@dataclass
class AccuracyReport:
    """Everything a run measured, with the settings that made it."""

    records: list[dict[str, Any]]
    summary: dict[str, dict[str, dict[str, Any]]]
    datasets: dict[str, str]
    settings: dict[str, Any]

    def markdown(self) -> str:
        header = [f"- **{name}**: {description}" for name, description in self.datasets.items()]
        settings = ", ".join(f"{key}={value}" for key, value in self.settings.items())
        return "\n".join(header) + f"\n\nSettings: {settings}\n\n" + markdown_tables(self.summary, list(self.datasets))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def run_table(
    datasets: Sequence[AccuracyDataset],
    rows: Sequence[MethodRow],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    eval_every: int = 1,
    device: str = "cpu",
    on_record: Callable[[dict[str, Any]], None] | None = None,
) -> AccuracyReport:
    """Every row on every data set with every seed. ``on_record`` sees each finished cell (progress, partial JSON)."""
    records = []
    for dataset in datasets:
        for row in rows:
            for seed in seeds:
                try:
                    record = run_cell(row, dataset, seed, epochs=epochs, eval_every=eval_every, device=device)
                except ValueError as error:  # a configuration this data set cannot train: recorded, run goes on
                    log.warning("%s on %s (seed %d) failed: %s", row.name, dataset.name, seed, error)
                    record = {"dataset": dataset.name, "method": row.name, "kind": row.kind, "seed": seed,
                              "error": str(error)}  # fmt: skip
                records.append(record)
                if on_record is not None:
                    on_record(record)
    return AccuracyReport(
        records,
        summarize(records),
        {dataset.name: dataset.description for dataset in datasets},
        {
            "seeds": list(seeds),
            "lanp_epochs": epochs if epochs is not None else "preset (300)",
            "lanp_eval_every": eval_every,
            "device": device,
        },
    )
