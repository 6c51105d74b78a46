"""Training LANP on an unlabeled feature set: propagate -> pseudo-label -> re-weight -> weighted BCE.

Data flow (the official recipe, every switch in ``LANPConfig``):
1. Load every video's features (with ``train.skip_short``, videos too short to propagate are left out with a
   warning and listed; with ``train.pseudo_video_snippets``, long videos are cut into pseudo-videos); 10-crop
   features are averaged over crops (the official ShanghaiTech training does this for propagation, pseudo labels
   and re-weighting). The classifier is trained on the crop-averaged features
   too: one sequence per video instead of ten, 10x less arithmetic; at test time ``pipeline.evaluation.evaluator``
   scores each
   crop and averages the scores, as the official test code does.
2. Normality propagation (``models.propagation``), pseudo labels (``models.pseudo_labels``), loss weights
   (``models.reweighting``), computed once before training and fixed for all epochs (as in the official code).
3. Each video contributes ``num_segments`` snippets at floor(i * T / n); labels and weights are per snippet on the
   full video and sampled with the same indices. All sampled snippets are stacked once into one (N, n, D) tensor on
   the device, so an epoch is a shuffled sequence of index batches with no Python data loading. With
   ``classifier.context=trailing_mean`` (or ``auto`` deciding so on this archive, ``models.context``) each sampled
   snippet also carries its trailing mean over the full video, sampled with the same indices.
4. RMSprop on weighted BCE over batches of ``batch_size`` videos, shuffled, ``drop_last`` as configured.

The default scoring threshold is chosen without labels (see ``choose_threshold``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from lanp_vad.models.bank import ArchiveCheck, NormalityBank, build_bank, check_archive, seed_indices
from lanp_vad.models.calibration import fit_calibration
from lanp_vad.models.classifier import LANPClassifier, create_classifier
from lanp_vad.models.config import LANPConfig
from lanp_vad.models.context import between_video_share, trailing_mean
from lanp_vad.models.detector import Detector
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.models.propagation import MIN_SNIPPETS, Propagation, propagate_videos
from lanp_vad.models.pseudo_labels import PseudoLabels
from lanp_vad.models.reweighting import loss_weights, normal_list
from lanp_vad.models.sampling import segment_indices
from lanp_vad.models.snippet_ranking import joint_evidence, pseudo_label_videos, smooth_on_graph
from lanp_vad.models.torch_head import TorchHead
from lanp_vad.pipeline.device import resolve_device
from lanp_vad.pipeline.evaluation.groundtruth import GroundTruth
from lanp_vad.pipeline.features.featureset import FeatureSet
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.progress import progress_bar
from lanp_vad.pipeline.training.domain import FeatureStats, fit_feature_stats
from lanp_vad.pipeline.training.model_dir import save_model

log = logging.getLogger(__name__)

EvalFn = Callable[[LANPClassifier], dict[str, float]]


class TrainingError(UserError):
    """A training run that cannot do what was asked (e.g. a batch larger than the set with drop_last)."""

    kind = ErrorKind.TRAINING_DATA


@dataclass
class TrainResult:
    """The trained classifier (eval mode; None for an archive without anomalies, scored by its bank alone), what
    scores (``detector``: the classifier, and where the config asks for them the normality bank and the
    calibration), per-epoch history of the classifier, the pseudo labels it learned from, metadata."""

    model: LANPClassifier | None
    detector: Detector
    history: list[dict[str, float]]
    pseudo_labels: PseudoLabels
    metadata: dict[str, Any] = field(default_factory=dict)
    feature_stats: FeatureStats | None = None  # saved with the model: the domain-shift check at scoring time

    def save(self, directory: str | Path, spec: FeatureSpec, config: LANPConfig,
             metadata: dict[str, Any] | None = None) -> Path:
        """Write the model directory of this result (``metadata``: instead of the training's own)."""
        return save_model(directory, self.model, spec, config, self.metadata if metadata is None else metadata,
                          bank=self.detector.bank, calibration=self.detector.calibration,
                          stream_calibration=self.detector.stream, feature_stats=self.feature_stats)  # fmt: skip


def load_training_features(features: FeatureSet) -> list[np.ndarray]:
    """Crop-averaged (T, D) float32 features of every video (one dimension across the set, finite values).

    No copies: (T, D) files stay read-only memory maps (validated as they are read by ``FeatureSet.load``); the
    propagation copies each video once into its own buffer, and the trainer stacks only the sampled snippets.
    10-crop files are averaged, which makes the one array they need.
    """
    return features.load_all(average_crops=True)


def check_batching(num_videos: int, config: LANPConfig) -> None:
    """Refuse a set too small to learn from, or a run in which drop_last would drop every batch.

    Two videos are the least that can be trained on (one pseudo-abnormal, one pseudo-normal). The official
    batch of 30 with drop_last (the ``reference`` presets) trains nothing on fewer than 30 videos, e.g. UCSD
    Ped2's 28 clips; the ``default`` preset keeps the last partial batch instead (batches of min(30, N)).
    """
    train = config.train
    if num_videos < 2:
        raise TrainingError(
            f"the feature set has {num_videos} usable video(s); training needs at least 2 (pseudo labels contrast "
            "videos with each other)"
        )
    if train.drop_last and num_videos < train.batch_size:
        raise TrainingError(
            f"the feature set has {num_videos} videos but train.batch_size is {train.batch_size} with "
            f"train.drop_last=true, so no batch would ever be trained; set train.drop_last=false or "
            f"train.batch_size={num_videos} (or less)"
        )


def _precision_recall(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    true_positives = float(np.sum(predicted & truth))
    return {
        "precision": true_positives / max(int(predicted.sum()), 1),
        "recall": true_positives / max(int(truth.sum()), 1),
    }


def pseudo_label_quality(
    features: FeatureSet,
    lengths: list[int],
    labels: PseudoLabels,
    ground_truth: GroundTruth,
    owners: np.ndarray | None = None,
) -> dict[str, dict[str, float]]:
    """Video- and snippet-level precision/recall of the abnormal pseudo labels against ground truth.

    ``owners`` maps each pseudo-video to its video (in order) when videos were cut; a video counts as taken for
    abnormal when any of its pieces was.
    """
    entries = list(features)
    video_truth = np.array([ground_truth.video_label(entry.video_id) for entry in entries], dtype=bool)
    snippet_truth = np.concatenate(
        [
            ground_truth.snippet_labels_for(entry.video_id, length, num_frames=entry.num_frames)
            for entry, length in zip(entries, lengths, strict=True)
        ]
    ).astype(bool)
    snippet_predicted = np.concatenate(labels.snippet_labels).astype(bool)
    owners = np.arange(len(entries)) if owners is None else owners
    video_predicted = np.zeros(len(entries), dtype=bool)
    np.logical_or.at(video_predicted, owners, labels.abnormal.astype(bool))
    return {
        "video": _precision_recall(video_predicted, video_truth),
        "snippet": _precision_recall(snippet_predicted, snippet_truth),
    }


def usable_videos(features: FeatureSet, arrays: list[np.ndarray], config: LANPConfig) -> tuple[FeatureSet, list]:
    """The videos long enough to propagate (T >= 3) and their arrays; shorter ones skipped or refused.

    ``train.skip_short`` (the default preset) leaves them out with a warning; otherwise (the official code) the
    run is refused, naming them.
    """
    short = [video_id for video_id, array in zip(features.video_ids, arrays, strict=True) if len(array) < MIN_SNIPPETS]
    if not short:
        return features, arrays
    names = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
    if not config.train.skip_short:
        raise TrainingError(
            f"{names}: fewer than {MIN_SNIPPETS} snippets, too short to propagate ({len(short)} video(s)); "
            "set train.skip_short=true to leave them out (the default preset does)"
        )
    log.warning("skipping %d video(s) shorter than %d snippets: %s", len(short), MIN_SNIPPETS, names)
    left_out = set(short)
    kept = [index for index, video_id in enumerate(features.video_ids) if video_id not in left_out]
    entries = [features.entries[index] for index in kept]
    subset = FeatureSet(entries, features.spec, source=features.source) if entries else features
    return subset, [arrays[index] for index in kept]


def cut_pseudo_videos(arrays: list[np.ndarray], snippets: int | None) -> tuple[list[np.ndarray], np.ndarray]:
    """Each video longer than ``snippets`` cut into round(T / snippets) about equal consecutive pieces (views).

    Returns the pieces in order and, per piece, the index of its video. ``None`` keeps whole videos.
    """
    if snippets is None:
        return arrays, np.arange(len(arrays))
    pieces, owners = [], []
    for index, array in enumerate(arrays):
        parts = np.array_split(array, max(1, round(len(array) / snippets))) if len(array) > snippets else [array]
        pieces += parts
        owners += [index] * len(parts)
    return pieces, np.asarray(owners)


def choose_threshold(scores: np.ndarray, targets: np.ndarray) -> float:
    """The default event threshold, chosen without ground truth.

    Midpoint between the median score of pseudo-normal and of pseudo-abnormal training snippets. Why: the weighted
    BCE head is often under-confident in absolute terms (a fixed 0.5 can flag nothing), medians ignore the tails
    that pseudo-label noise puts in both groups, and the midpoint adapts to each model's score scale.
    """
    normal, abnormal = scores[targets < 0.5], scores[targets >= 0.5]
    if normal.size == 0 or abnormal.size == 0:
        return 0.5
    return float((np.median(normal) + np.median(abnormal)) / 2)


def _sample(arrays: list[np.ndarray], num_segments: int) -> np.ndarray:
    """Stack the floor(i * T / n) snippets of every video: (N, n, ...) from per-video (T, ...)."""
    return np.stack([array[segment_indices(array.shape[0], num_segments)] for array in arrays])


@dataclass(frozen=True)
class ClassifierInputs:
    """The stacked sampled snippets the head trains on, their trailing means when it uses the video context, and
    the config with ``classifier.context=auto`` decided (``record`` says how, for metadata.json)."""

    config: LANPConfig
    sampled: np.ndarray  # (N, n, D) on the host, for the loss re-weighting
    features: torch.Tensor  # the same on the training device
    references: torch.Tensor | None
    record: dict[str, Any]


def classifier_inputs(arrays: list[np.ndarray], config: LANPConfig, device: torch.device) -> ClassifierInputs:
    """Sample every video's ``num_segments`` snippets; decide ``context=auto`` by the between-video share."""
    classifier = config.classifier
    record: dict[str, Any] = {"requested": classifier.context}
    if classifier.context == "auto":
        share = between_video_share(arrays)
        used = "trailing_mean" if share >= classifier.context_auto_share else "none"
        record["between_video_share"] = round(share, 4)
        config = config.model_copy(update={"classifier": classifier.model_copy(update={"context": used})})
    record["used"] = config.classifier.context
    count = config.train.num_segments
    references = None
    if config.classifier.context == "trailing_mean":
        window = config.classifier.context_window
        references = torch.from_numpy(np.stack([
            trailing_mean(torch.tensor(array), window)[segment_indices(array.shape[0], count)].numpy()
            for array in arrays
        ])).to(device)  # fmt: skip
    sampled = _sample(arrays, count)
    return ClassifierInputs(config, sampled, torch.from_numpy(sampled).to(device), references, record)


def _score_videos(model: LANPClassifier, arrays: list[np.ndarray], device: torch.device) -> list[np.ndarray]:
    """The classifier's score of every snippet of every (T, D) video (eval mode, no gradients)."""
    with torch.no_grad():
        batches = (torch.tensor(np.asarray(array), dtype=torch.float32)[None].to(device) for array in arrays)
        return [model(batch)[0].cpu().numpy() for batch in batches]


@dataclass
class _Archive:
    """The training videos as the method sees them: usable (T >= 3), crop-averaged, cut into pseudo-videos."""

    features: FeatureSet  # the usable videos
    lengths: list[int]  # snippets of each usable video
    skipped: list[str]  # video ids left out (too short)
    arrays: list[np.ndarray]  # (T, D) per pseudo-video (the videos themselves unless train.pseudo_video_snippets)
    owners: np.ndarray  # the video of each pseudo-video
    piece_ids: list[str]


def _prepare(features: FeatureSet, config: LANPConfig) -> _Archive:
    """Stage 1: load, leave out or refuse short videos, cut long recordings (see ``train.pseudo_video_snippets``)."""
    check_batching(len(features), config)  # before loading anything
    all_ids = features.video_ids
    features, video_arrays = usable_videos(features, load_training_features(features), config)
    kept_ids = set(features.video_ids)
    arrays, owners = cut_pseudo_videos(video_arrays, config.train.pseudo_video_snippets)
    check_batching(len(arrays), config)
    piece_ids = [
        features.video_ids[owner] if len(arrays) == len(video_arrays) else f"{features.video_ids[owner]}#{index}"
        for index, owner in enumerate(owners)
    ]
    skipped = [video_id for video_id in all_ids if video_id not in kept_ids]
    return _Archive(features, [array.shape[0] for array in video_arrays], skipped, arrays, owners, piece_ids)


@dataclass
class _Classifier:
    """Stage 4's outcome: the trained head, its per-epoch history, and what it was trained on."""

    model: LANPClassifier
    history: list[dict[str, float]]
    inputs: ClassifierInputs
    sampled_labels: np.ndarray


def _train_classifier(
    archive: _Archive, labels: PseudoLabels, config: LANPConfig, device: torch.device, *, progress: bool,
    eval_fn: EvalFn | None,
) -> _Classifier:
    """Stage 4: sample every video's snippets, weight their labels by the normal list, fit the head."""
    train = config.train
    inputs = classifier_inputs(archive.arrays, config, device)
    normals = None
    if inputs.config.reweight.enabled:
        normals = normal_list(archive.arrays, labels.confident_normal, inputs.config.reweight, train.num_segments)
    sampled_labels = _sample(labels.snippet_labels, train.num_segments).astype(np.float32)
    # Weights are per snippet, so weighting the sampled snippets equals sampling the full video's weights.
    sampled_weights = (
        np.ones_like(sampled_labels) if normals is None
        else loss_weights(inputs.sampled, sampled_labels, normals, inputs.config.reweight)
    )  # fmt: skip
    targets = torch.from_numpy(sampled_labels).to(device)
    weights = torch.from_numpy(np.asarray(sampled_weights, dtype=np.float32)).to(device)
    model, history = fit_classifier(
        inputs.features, targets, weights, inputs.config, references=inputs.references, progress=progress,
        eval_fn=eval_fn,
    )  # fmt: skip
    return _Classifier(model, history, inputs, sampled_labels)


def _detector(
    archive: _Archive, labels: PseudoLabels, trained: _Classifier, propagation: Propagation,
    bank: NormalityBank | None, distances: list[np.ndarray] | None, config: LANPConfig, device: torch.device,
) -> tuple[Detector, float, str, dict[str, Any]]:
    """Stage 5: what scores and its threshold: the calibrated evidence of the classifier, the (cleaned) bank and
    the videos' own propagation (``bank.fusion=mean``), or the classifier alone at the midpoint threshold."""
    head = TorchHead(trained.model, device)
    if bank is None or config.bank.fusion != "mean":
        with torch.no_grad():
            train_scores = trained.model(trained.inputs.features, trained.inputs.references).cpu().numpy()
        threshold = choose_threshold(train_scores.ravel(), trained.sampled_labels.ravel())
        rule = "midpoint of the median scores of pseudo-normal and pseudo-abnormal snippets"
        return Detector(head), threshold, rule, {}
    full_scores = _score_videos(trained.model, archive.arrays, device)
    record: dict[str, Any] = {}
    if config.bank.clean_seeds and bank.kind == "seeds":
        abnormal = np.concatenate(labels.snippet_labels) >= 0.5
        bank, record = _clean_seeds(bank, archive.arrays, full_scores, abnormal, config.bank.max_cleaned)
        distances = bank.archive_distances(archive.arrays, archive.owners)
    parts = {"classifier": full_scores, "bank": distances}
    within = [1.0 - z / max(float(np.max(z)), 1e-12) for z in propagation.z]
    calibration = fit_calibration({**parts, "within": within}, labels.snippet_labels)
    stream = fit_calibration(parts, labels.snippet_labels)
    record.update({"entries": int(len(bank.entries)), "kind": bank.kind, "centred": bank.centred})
    return Detector(head, bank, calibration, stream, config.propagation), 0.5, calibration.rule, record


def train_lanp(
    features: FeatureSet,
    config: LANPConfig,
    *,
    ground_truth: GroundTruth | None = None,
    progress: bool = True,
    eval_fn: EvalFn | None = None,
) -> TrainResult:
    """Train a LANP model on ``features`` (no labels used; ``ground_truth`` only logs pseudo-label quality).

    Stages: prepare the archive; propagate each video's normality from its seeds; build the normality bank and
    check whether the archive holds anomalies (an archive without any is modelled by its bank alone); pseudo-label;
    train the classifier; calibrate what scores. ``eval_fn(model)`` is called after each epoch with the classifier
    in eval mode; what it returns (e.g. the test AUC) is stored in that epoch's history record, which allows
    best-epoch reporting (test-set selection).
    """
    started = time.perf_counter()
    archive = _prepare(features, config)
    device = resolve_device(config.train.device)
    propagation = propagate_videos(archive.arrays, config.propagation, device=device, seed=config.train.seed,
                                   video_ids=archive.piece_ids)  # fmt: skip
    bank, distances, check = None, None, None
    if config.bank.enabled:
        bank = build_bank(archive.arrays, config.bank, groups=archive.owners)
        distances = bank.archive_distances(archive.arrays, archive.owners)
        check = check_archive(distances)
        if config.bank.archive == "normal_only" or (config.bank.archive == "auto" and not check.holds_anomalies):
            return _normal_only(archive, config, check, started)
    labels = pseudo_labels_of(archive.arrays, propagation, distances, config, device)
    quality = None
    if ground_truth is not None:
        quality = pseudo_label_quality(archive.features, archive.lengths, labels, ground_truth, archive.owners)
        log.info(
            "pseudo labels vs ground truth: video precision %.3f recall %.3f; snippet precision %.3f recall %.3f",
            quality["video"]["precision"], quality["video"]["recall"],
            quality["snippet"]["precision"], quality["snippet"]["recall"],
        )  # fmt: skip
    trained = _train_classifier(archive, labels, config, device, progress=progress, eval_fn=eval_fn)
    config = trained.inputs.config  # classifier.context=auto decided
    detector, threshold, rule, bank_record = _detector(archive, labels, trained, propagation, bank, distances,
                                                       config, device)  # fmt: skip
    metadata = {
        "training_data": {
            **_data_record(archive),
            "featureless": [archive.piece_ids[index] for index in propagation.featureless],
            "crop_handling": "crops averaged for propagation, pseudo labels, re-weighting and training",
        },
        "classifier_context": trained.inputs.record,
        "pseudo_labels": {
            "video_score": config.pseudo.video_score,
            "labels": config.bank.labels if bank is not None else "lanp",
            "abnormal_fraction": float(labels.abnormal_fraction),
            "abnormal_videos": int(labels.abnormal.sum()),
            "confident_normal_videos": len(labels.confident_normal),
            "abnormal_snippet_share": float(np.concatenate(labels.snippet_labels).mean()),
            **({"vs_ground_truth": quality} if quality is not None else {}),
        },
        "threshold": threshold,
        "threshold_rule": rule,
        "archive": _archive_record(config, check, "mixed"),
        **({"bank": bank_record} if bank_record else {}),
        "training": {
            "epochs": config.train.epochs,
            "steps": int(trained.history[-1]["step"]),
            "final_loss": trained.history[-1]["loss"],
            "device": str(device),
            "seconds": round(time.perf_counter() - started, 3),
        },
    }
    if eval_fn is not None:
        metadata["metrics"] = epoch_metrics(trained.history)
    return TrainResult(trained.model, detector, trained.history, labels, metadata,
                       fit_feature_stats(archive.arrays, seed=config.train.seed))  # fmt: skip


def _data_record(archive: _Archive) -> dict[str, Any]:
    """metadata.json's summary of the training data."""
    return {
        "source": archive.features.source,
        "num_videos": len(archive.features),
        "num_pseudo_videos": len(archive.arrays),
        "num_snippets": int(sum(archive.lengths)),
        "skipped_short": archive.skipped,
        "feature_dim": int(archive.arrays[0].shape[1]),
        "crops": archive.features.spec.crops,
    }


def pseudo_labels_of(
    arrays: list[np.ndarray], propagation: Propagation, distances: list[np.ndarray] | None, config: LANPConfig,
    device: torch.device,
) -> PseudoLabels:
    """LANP's pseudo labels (stage 3), the snippets of abnormal videos ranked by z (no bank: ``distances`` None, or
    ``bank.labels=lanp``) or by the joint evidence of the propagation and the bank distances (leave-one-video-out,
    smoothed on each video's graph)."""
    if distances is None or config.bank.labels == "lanp":
        return pseudo_label_videos(propagation, config.pseudo, config.propagation)
    evidence = smooth_on_graph(arrays, distances, config.propagation, config.bank.smooth_alpha, device=device,
                               seed=config.train.seed)  # fmt: skip
    return pseudo_label_videos(propagation, config.pseudo, config.propagation,
                               ranking=joint_evidence(propagation.z, evidence))  # fmt: skip


def _clean_seeds(
    bank: NormalityBank, arrays: list[np.ndarray], scores: list[np.ndarray], abnormal: np.ndarray, max_share: float
) -> tuple[NormalityBank, dict[str, Any]]:
    """Drop the seed entries the trained classifier scores above its own threshold (the midpoint of the median
    scores of pseudo-normal and pseudo-abnormal snippets), the highest first and at most ``max_share`` of them."""
    flat = np.concatenate(scores)
    threshold = choose_threshold(flat, abnormal.astype(np.float32))
    seed_scores = np.concatenate([values[seed_indices(len(values))] for values in scores])
    if len(seed_scores) != len(bank.entries):  # a bank cut differently from these videos: leave it alone
        return bank, {"cleaned_seeds": 0}
    order = np.argsort(-seed_scores, kind="stable")
    flagged = order[: min(int(np.sum(seed_scores >= threshold)), int(max_share * len(seed_scores)))]
    drop = np.zeros(len(seed_scores), dtype=bool)
    drop[flagged] = True
    log.info("normality bank: %d of %d seed snippets dropped (the classifier finds them abnormal)", drop.sum(),
             len(drop))  # fmt: skip
    return bank.without(drop), {"cleaned_seeds": int(drop.sum()), "seed_threshold": float(threshold)}


def _archive_record(config: LANPConfig, check: ArchiveCheck | None, mode: str) -> dict[str, Any]:
    """metadata.json's account of which mode trained the model and why."""
    if check is None:
        return {"mode": mode, "requested": "mixed", "reason": "no normality bank (bank.enabled=false)"}
    reason = check.describe() if config.bank.archive == "auto" else f"bank.archive={config.bank.archive} was set"
    return {"mode": mode, "requested": config.bank.archive, "evidence_ratio": check.ratio, "reason": reason}


def _normal_only(archive: _Archive, config: LANPConfig, check: ArchiveCheck, started: float) -> TrainResult:
    """An archive without anomalies: its model is a bank of all its snippets, calibrated so that 1 % of them lie
    above the threshold; no pseudo labels and no classifier (nothing abnormal to learn from)."""
    arrays, owners = archive.arrays, archive.owners
    bank = build_bank(arrays, config.bank, entries="all", groups=owners)
    calibration = fit_calibration({"bank": bank.archive_distances(arrays, owners)}, None)
    zeros = [np.zeros(len(array), dtype=np.float32) for array in arrays]
    labels = PseudoLabels(np.zeros(len(arrays)), np.zeros(len(arrays), dtype=bool), zeros,
                          np.arange(len(arrays)), 0.0)  # fmt: skip
    log.info("normal-only archive: %s; the model is a bank of %d snippets", check.describe(), len(bank.entries))
    metadata = {
        "training_data": _data_record(archive),
        "archive": _archive_record(config, check, "normal_only"),
        "bank": {"entries": int(len(bank.entries)), "kind": bank.kind, "centred": bank.centred},
        "pseudo_labels": {"abnormal_videos": 0, "abnormal_fraction": 0.0, "abnormal_snippet_share": 0.0},
        "threshold": 0.5,
        "threshold_rule": calibration.rule,
        "training": {"epochs": 0, "steps": 0, "device": "cpu", "seconds": round(time.perf_counter() - started, 3)},
    }
    return TrainResult(None, Detector(None, bank, calibration, None, config.propagation), [], labels, metadata,
                       fit_feature_stats(arrays, seed=config.train.seed))  # fmt: skip


def fit_classifier(
    inputs: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor,
    config: LANPConfig,
    *,
    references: torch.Tensor | None = None,
    progress: bool,
    eval_fn: EvalFn | None,
) -> tuple[LANPClassifier, list[dict[str, float]]]:
    """The training loop over pre-stacked (N, n, D) tensors (``references``: their trailing means, for a head
    with the video context); returns the eval-mode model and per-epoch history."""
    train = config.train
    device = inputs.device
    torch.manual_seed(train.seed)
    model = create_classifier(dim=inputs.shape[-1], config=config.classifier, seed=train.seed).to(device)
    optimiser = torch.optim.RMSprop(
        model.parameters(), lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
    )
    generator = torch.Generator(device="cpu").manual_seed(train.seed)
    num_videos = inputs.shape[0]
    usable = num_videos - num_videos % train.batch_size if train.drop_last else num_videos
    batches_per_epoch = -(-usable // train.batch_size)
    history: list[dict[str, float]] = []
    step = 0
    autocast_on = train.amp == "on" or (train.amp == "auto" and device.type == "cuda")
    bar = progress_bar(range(1, train.epochs + 1), desc="training", unit="epoch", enabled=progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(num_videos, generator=generator)[:usable].to(device)
        epoch_loss = torch.zeros((), device=device)
        for batch in order.split(train.batch_size):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast_on):
                scores = model(inputs[batch], None if references is None else references[batch])
            bce = functional.binary_cross_entropy(scores.float(), targets[batch], reduction="none")
            loss = (weights[batch] * bce).mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            epoch_loss += loss.detach()
            step += 1
        record: dict[str, float] = {"epoch": epoch, "step": step, "loss": float(epoch_loss) / batches_per_epoch}
        if eval_fn is not None:
            model.eval()
            record.update(eval_fn(model))
        history.append(record)
        bar.set_postfix({name: f"{value:.4f}" for name, value in record.items() if name not in ("epoch", "step")})
    return model.eval(), history


def epoch_metrics(history: list[dict[str, float]], key: str = "auc_roc") -> dict[str, Any]:
    """Final-epoch and best-epoch evaluation, labelled: the best epoch is chosen on the evaluation set."""
    final = history[-1]
    best = max(history, key=lambda record: record.get(key, float("-inf")))
    metric_names = [name for name in final if name not in ("epoch", "step", "loss")]
    return {
        "final_epoch": {"epoch": int(final["epoch"]), **{name: final[name] for name in metric_names}},
        "best_epoch": {
            "epoch": int(best["epoch"]),
            **{name: best[name] for name in metric_names},
            "selection": f"max {key} over epochs on the evaluation set (test-set selection, as the papers report)",
        },
    }
