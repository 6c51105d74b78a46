"""UCSD Ped2 data sets for the accuracy table, all built from one set of real-video features of the 28 clips.

- **Ped2**: train on all 28 clips unlabeled, evaluate the 12 test clips (every anomaly touches a clip edge, so
  LANP's prior is violated by construction).
- **Ped2-long**: each test clip between two normal training clips of the same camera, so the video starts and
  ends with ordinary activity as real footage does. Trained on the 16 training clips plus the 12 long videos;
  scored on the whole long videos (the column) and on the inserted test part alone (region ``test part``: its
  2,010 frames hold only 362 normal ones, all at a clip edge, so it measures ranking inside a clip).
- **Ped2-control**: Ped2-long plus 12 more long videos whose middle is a normal training clip, scored on all 24
  whole videos. A method that only finds "the middle clip" or the joins between clips flags the normal
  middles too and loses here what it gained on Ped2-long: the difference is how much signal comes from joins.
- **Ped2-small 1-4**: four small archives, a first try's size: 4 normal training clips and 3 test clips each
  (disjoint draws in order: training clips 1-4 with test clips 1-3, 5-8 with 4-6, ...), trained on the 7 clips
  unlabeled and scored on the 3. Two test clips of draw 3 (8 and 9) are abnormal from their first frame to their
  last and the third (7) from frame 46 on, so there the prior holds for nothing.
- **Ped2-continuous**: all 28 clips concatenated, train and test clips interleaved, into 4 long recordings
  that start and end with a training clip; scored on the whole recordings and on the test clips' parts.
  This is the case for ``train.pseudo_video_snippets`` (cutting long recordings before propagation).

Concatenating features equals concatenating the decoded clips here because every snippet is 16 frames of one
clip either way (the last snippet of a clip is padded with its own last frame instead of running into the next).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lanp_vad.pipeline.evaluation.groundtruth import GroundTruth, VideoAnnotation, load_ground_truth
from lanp_vad.pipeline.features.featureset import FeatureSet, FeatureStore, open_feature_set
from lanp_vad.pipeline.research.accuracy import AccuracyError
from lanp_vad.pipeline.research.datasets import AccuracyDataset, Region, store_arrays, subset
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH

log = logging.getLogger(__name__)

PED2_DATASETS = ("ped2", "ped2-long", "ped2-control", "ped2-continuous", "ped2-small")
PED2_FPS = 10.0  # UCSD Ped2 (../shared/data/README.md): every construction keeps the clips' frame rate


def extract_ped2(
    data_dir: Path,
    cache_dir: Path,
    *,
    device: str = "cpu",
    stride: int = SNIPPET_LENGTH,
    spec: Mapping[str, Any] | None = None,
) -> FeatureSet:
    """EfficientNet-Lite0 (offline ImageNet weights) features of all 28 Ped2 clips, cached as a feature store
    (``stride`` frames between snippet starts: 16 is the field's convention, less gives overlapping snippets;
    ``spec``: extraction settings other than the default spec's, e.g. ``{"frames_per_snippet": 16}``)."""
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    videos = data_dir / "ucsd-ped2" / "videos"
    sources = {
        f"{split}_{path.stem}": path for split in ("train", "test") for path in sorted((videos / split).glob("*.mp4"))
    }
    if len(sources) != 28:
        raise AccuracyError(f"expected the 28 UCSD Ped2 clips under {videos}, found {len(sources)}")
    settings = {"backbone": "efficientnet_lite0", "weights": "pretrained", "device": device, "stride": stride}
    extractor = FeatureExtractor(ExtractionConfig(**{**settings, **(spec or {})}))
    # Named by the spec: a cache extracted under another spec (an older decode rule) is left alone, not refused.
    folder = cache_dir / f"ped2-efficientnet_lite0-{extractor.spec.digest()}"
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


class _Concatenation:
    """Long videos made of clips: their arrays, whole-video truth, and each tagged clip's snippet range."""

    def __init__(self, features: FeatureSet, truth: GroundTruth):
        self.features, self.truth = features, truth
        self.arrays: dict[str, np.ndarray] = {}
        self.annotations: dict[str, VideoAnnotation] = {}
        self.parts: dict[str, list[tuple[str, int, int]]] = {}

    def add(self, video_id: str, clips: Sequence[str]) -> None:
        arrays = [self.features.load(clip) for clip in clips]
        intervals, parts, start = [], [], 0
        for clip, array in zip(clips, arrays, strict=True):
            offset = SNIPPET_LENGTH * start
            intervals += [(s + offset, e + offset) for s, e in self.truth.annotations[clip].intervals]
            parts.append((clip, start, start + len(array)))
            start += len(array)
        self.arrays[video_id] = np.concatenate(arrays)
        self.annotations[video_id] = VideoAnnotation(intervals=tuple(intervals))
        self.parts[video_id] = parts

    def store(self, folder: Path) -> FeatureSet:
        return store_arrays(folder, self.features.spec, self.arrays)

    def ground_truth(self, source: str, clips: Sequence[str] = ()) -> GroundTruth:
        """Truth of the long videos, and of ``clips`` trained on beside them (pseudo-label quality)."""
        annotations = {clip: self.truth.annotations[clip] for clip in clips}
        return GroundTruth({**annotations, **self.annotations}, "pad_last", source=source)


def _long_videos(
    concatenation: _Concatenation, middles: Sequence[str], train_ids: Sequence[str], pairing: int, prefix: str
) -> dict[str, tuple[int, int]]:
    """One long video per middle clip between training clips 2i + pairing and 2i + 1 + pairing; middle ranges."""
    slices = {}
    for index, middle in enumerate(middles):
        before = train_ids[(2 * index + pairing) % len(train_ids)]
        after = train_ids[(2 * index + 1 + pairing) % len(train_ids)]
        long_id = f"{prefix}_{middle.split('_')[1]}"
        concatenation.add(long_id, [before, middle, after])
        slices[long_id] = concatenation.parts[long_id][1][1:]
    return slices


def _test_part_region(concatenation: _Concatenation, slices: dict[str, tuple[int, int]]) -> Region:
    truth = {long_id: concatenation.truth.annotations[concatenation.parts[long_id][1][0]] for long_id in slices}
    return Region("test part", GroundTruth(truth, "pad_last", source="ped2.mat"), slices)


def ped2_datasets(
    data_dir: Path,
    cache_dir: Path,
    names: Sequence[str] = PED2_DATASETS,
    *,
    pairing: int = 0,
    device: str = "cpu",
    spec: Mapping[str, Any] | None = None,
) -> list[AccuracyDataset]:
    """The Ped2 data sets named in ``names`` (see the module docstring); ``pairing`` shifts the clip pairing and
    ``spec`` changes the extraction settings (see :func:`extract_ped2`)."""
    unknown = sorted(set(names) - set(PED2_DATASETS))
    if unknown:
        raise AccuracyError(f"unknown Ped2 data set(s) {', '.join(unknown)}; choose from {', '.join(PED2_DATASETS)}")
    features = extract_ped2(data_dir, cache_dir, device=device, spec=spec)
    train_ids = [video_id for video_id in features.video_ids if video_id.startswith("train_")]
    test_ids = [video_id for video_id in features.video_ids if video_id.startswith("test_")]
    truth = _ped2_truth(data_dir, train_ids, test_ids)
    kinds = [name.removeprefix("ped2").removeprefix("-") or "clips" for name in names]
    derived = cache_dir / f"ped2-derived-{features.spec.digest()}"
    return clip_datasets("Ped2", features, truth, train_ids, test_ids, derived, kinds, pairing, fps=PED2_FPS)


CLIP_KINDS = ("clips", "long", "control", "continuous", "small")
SMALL_ARCHIVE = (4, 3)
"""A small archive: this many normal clips and clips with anomalies."""


def clip_datasets(
    prefix: str,
    features: FeatureSet,
    truth: GroundTruth,
    train_ids: Sequence[str],
    test_ids: Sequence[str],
    cache: Path,
    kinds: Sequence[str] = CLIP_KINDS,
    pairing: int = 0,
    *,
    fps: float | None = None,
) -> list[AccuracyDataset]:
    """Data sets made of normal clips (``train_ids``) and clips with anomalies (``test_ids``), as for Ped2.

    ``kinds``: ``clips`` (train on all clips, score the test clips), ``long``, ``control``, ``continuous``,
    ``small`` (see the module docstring). Used for Ped2 and, on a tiny synthetic set, by the CI run of the harness.
    """
    suffix = f" (pairing {pairing})" if pairing else ""
    datasets: list[AccuracyDataset] = []
    if "clips" in kinds:
        datasets.append(AccuracyDataset(
            prefix, features, subset(features, test_ids), truth,
            f"{prefix} clips; train: all {len(features)} clips unlabeled; test: the {len(test_ids)} with anomalies",
            train_truth=True,
            fps=fps,
        ))  # fmt: skip
    train_clips = [features.entry(video_id) for video_id in train_ids]
    if "long" in kinds or "control" in kinds:
        with_tests = _Concatenation(features, truth)
        slices = _long_videos(with_tests, test_ids, train_ids, pairing, "long")
        long_set = with_tests.store(cache / f"long-{pairing}")
    if "long" in kinds:
        datasets.append(AccuracyDataset(
            f"{prefix}-long{suffix}",
            FeatureSet(train_clips + list(long_set), features.spec, source=f"{prefix}-long"),
            long_set,
            with_tests.ground_truth(f"{truth.source} shifted into {prefix}-long", train_ids),
            f"each {prefix} test clip between two normal training clips (features concatenated); scored on the "
            "whole long videos and on the test part",
            train_truth=True,
            fps=fps,
            regions=(_test_part_region(with_tests, slices),),
        ))  # fmt: skip
    if "control" in kinds:
        normal_middles = [train_ids[(2 * index + 2 + pairing) % len(train_ids)] for index in range(len(test_ids))]
        controls = _Concatenation(features, truth)
        _long_videos(controls, normal_middles, train_ids, pairing, "control")
        evaluation = FeatureSet(
            list(long_set) + list(controls.store(cache / f"control-{pairing}")), features.spec, source="control"
        )
        datasets.append(AccuracyDataset(
            f"{prefix}-control{suffix}",
            FeatureSet(train_clips + list(evaluation), features.spec, source=f"{prefix}-control"),
            evaluation,
            GroundTruth(
                {**controls.ground_truth("", train_ids).annotations, **with_tests.annotations},
                "pad_last",
                source=f"{truth.source} shifted into {prefix}-control",
            ),
            f"{prefix}-long plus as many long videos with a normal training clip in the middle; scored on all whole "
            "videos (a method that finds middles or joins flags the normal middles too)",
            train_truth=True,
            fps=fps,
        ))  # fmt: skip
    if "continuous" in kinds:
        datasets.append(_continuous(prefix, features, truth, train_ids, test_ids, cache, fps=fps))
    if "small" in kinds:
        normal, abnormal = SMALL_ARCHIVE
        for draw in range(min(len(train_ids) // normal, len(test_ids) // abnormal)):
            clips = [*train_ids[normal * draw : normal * (draw + 1)],
                     *test_ids[abnormal * draw : abnormal * (draw + 1)]]  # fmt: skip
            datasets.append(AccuracyDataset(
                f"{prefix}-small-{draw + 1}", subset(features, clips), subset(features, clips[normal:]), truth,
                f"a small archive: {', '.join(clips)} unlabeled; scored on the last {abnormal}",
                train_truth=True,
                fps=fps,
            ))  # fmt: skip
    return datasets


def _continuous(
    prefix: str,
    features: FeatureSet,
    truth: GroundTruth,
    train_ids: Sequence[str],
    test_ids: Sequence[str],
    cache: Path,
    recordings: int = 4,
    *,
    fps: float | None = None,
) -> AccuracyDataset:
    """All clips interleaved (train, test, train, ...) into ``recordings`` long recordings."""
    recording = _Concatenation(features, truth)
    per_train, per_test = len(train_ids) // recordings, len(test_ids) // recordings
    for index in range(recordings):
        trains = list(train_ids[index * per_train : (index + 1) * per_train])
        tests = list(test_ids[index * per_test : (index + 1) * per_test])
        clips = [trains[0]]
        for position, test in enumerate(tests):
            clips += [test, *trains[1 + position : 2 + position]]
        clips += trains[1 + len(tests) :]
        recording.add(f"recording_{index + 1}", clips)
    recording_set = recording.store(cache / f"continuous-{recordings}")
    return AccuracyDataset(
        f"{prefix}-continuous",
        recording_set,
        recording_set,
        recording.ground_truth(f"{truth.source} shifted into {prefix}-continuous"),
        f"the clips interleaved (train, test, train, ...) into {recordings} long recordings that start and end with "
        "a training clip; trained on the recordings unlabeled, scored on the whole recordings",
        train_truth=True,
        fps=fps,
    )


def synthetic_clip_datasets(
    dataset: AccuracyDataset, cache: Path, kinds: Sequence[str] = ("long",), pairing: int = 0
) -> list[AccuracyDataset]:
    """The Ped2 constructions on a synthetic set: its normal videos play the training clips, its abnormal ones
    the test clips (the CI run of the harness uses the tiny set this way)."""
    entries = {entry.video_id: entry for entry in [*dataset.train, *dataset.evaluation]}
    features = FeatureSet(list(entries.values()), dataset.train.spec, source=dataset.train.source)
    normal = [video_id for video_id in entries if not dataset.ground_truth.annotations[video_id].intervals]
    abnormal = [video_id for video_id in entries if dataset.ground_truth.annotations[video_id].intervals]
    return clip_datasets(dataset.name, features, dataset.ground_truth, normal, abnormal, cache, kinds, pairing)
