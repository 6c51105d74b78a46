"""Synthetic snippet-feature sets with known anomalies, for tests and benchmarks of the method.

Each video shows one of a few normal "scenes" (non-negative prototype vectors), shifted by an offset shared by
the whole video, drifting slowly (a smooth random walk in a low-dimensional subspace) and with snippet noise; the
result passes a ReLU like a backbone's pooled features. An abnormal video adds, over one segment, a non-negative
abnormal pattern whose length is ``salience`` times the typical distance between two normal snippets of the same
video (salience 1: as far from normal as normal snippets are from each other). Segments cover
``anomaly_length`` (a range of shares of T) and start at least ``edge_margin`` * T from both ends (LANP's prior:
starts and ends are normal); ``scenes_per_video`` > 1 switches normal scenes inside a video (the paper's failure
case). ``length_independent`` shuffles the lengths among the videos (seeded), so that abnormal videos are not
shorter than normal ones as they are in ShanghaiTech's train split (where length alone separates them at video
AUC 0.925).

Scales: ``tiny`` (40 videos, T 20..80, 12 abnormal), ``shanghaitech`` (238 videos, T = floor(n/16) from the
real train split's frame counts, as the official propagation output's lengths show for 236 of 238; its 63
abnormal videos) and ``ucf-crime`` (1,610 videos, T = ceil(n/16) from
``Anomaly_Train.txt``, its 800 non-``Normal`` videos abnormal). Without the split files, lengths come from a seeded
distribution of the same range and ``length_source`` says so. Everything is deterministic by ``seed``; each
video is generated on its own, so ``write_synthetic_features`` holds one video at a time.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from lanp_vad.models.errors import UserError
from lanp_vad.pipeline.files import atomic_write_bytes
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH

Scale = Literal["tiny", "shanghaitech", "ucf-crime"]
SPLITS = {
    "shanghaitech": ("shanghaitech/splits/train_split.txt", lambda n: n // SNIPPET_LENGTH),
    "ucf-crime": ("ucf-crime/splits/Anomaly_Train.txt", lambda n: math.ceil(n / SNIPPET_LENGTH)),
}
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"  # beside the checkout
_SCENES = 6
_DRIFT_RANK = 16
_ABNORMAL_PATTERNS = 4
_LEVEL, _OFFSET, _DRIFT, _NOISE = 0.5, 0.05, 0.004, 0.03


@dataclass(frozen=True)
class SyntheticVideo:
    """One generated video: features (T, D) float32, 0/1 snippet labels and abnormal frame intervals."""

    video_id: str
    features: np.ndarray
    label: int
    snippet_labels: np.ndarray
    num_frames: int

    @property
    def intervals(self) -> list[tuple[int, int]]:
        """Abnormal frame intervals, 0-based, end-exclusive."""
        edges = np.diff(np.concatenate([[0], self.snippet_labels.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        return [(int(s) * SNIPPET_LENGTH, int(e) * SNIPPET_LENGTH) for s, e in zip(starts, ends, strict=True)]


@dataclass(frozen=True)
class SyntheticFeatures:
    """A whole generated set held in memory (use ``iter_synthetic_videos`` for large dimensions)."""

    features: list[np.ndarray]
    video_ids: list[str]
    video_labels: np.ndarray
    snippet_labels: list[np.ndarray]
    num_frames: np.ndarray
    length_source: str


@dataclass(frozen=True)
class _Plan:
    lengths: np.ndarray
    labels: np.ndarray
    length_source: str


def _plan(scale: Scale, seed: int, data_dir: Path | None, length_independent: bool = False) -> _Plan:
    """Video lengths and labels of a scale (from the real split when present, else seeded), maybe decoupled."""
    plan = _split_plan(scale, seed, data_dir)
    if not length_independent:
        return plan
    lengths = np.random.default_rng([seed, 3]).permutation(plan.lengths)
    return _Plan(lengths, plan.labels, f"{plan.length_source}, shuffled among the videos")


def _split_plan(scale: Scale, seed: int, data_dir: Path | None) -> _Plan:
    rng = np.random.default_rng([seed, 0])
    if scale == "tiny":
        labels = np.zeros(40, dtype=np.int64)
        labels[rng.choice(40, 12, replace=False)] = 1
        return _Plan(rng.integers(20, 81, 40), labels, "seeded uniform 20..80")
    relative, to_snippets = SPLITS[scale]
    split = (data_dir or DEFAULT_DATA_DIR) / relative
    if split.is_file():
        rows = [line.split(",") for line in split.read_text().split()]
        lengths = np.array([to_snippets(int(frames)) for _, _, frames in rows])
        if scale == "shanghaitech":
            labels = np.array([int(label) for _, label, _ in rows])
        else:  # the UCF train label column is meaningless; the class is in the name
            labels = np.array([0 if name.startswith("Normal") else 1 for name, _, _ in rows])
        return _Plan(lengths, labels, f"real frame counts of {relative}")
    if scale == "shanghaitech":
        count, abnormal, lengths = 238, 63, np.exp(rng.uniform(np.log(12), np.log(260), 238)).astype(int)
    else:
        count, abnormal = 1610, 800
        lengths = np.clip(np.exp(rng.normal(np.log(300), 1.0, count)), 5, 8000).astype(int)
    labels = np.zeros(count, dtype=np.int64)
    labels[rng.choice(count, abnormal, replace=False)] = 1
    return _Plan(lengths, labels, f"seeded distribution ({relative} not found)")


def describe_lengths(scale: Scale, *, seed: int = 0, data_dir: Path | None = None) -> str:
    """Where a scale's video lengths come from (the real split, or a seeded fallback)."""
    return _plan(scale, seed, data_dir).length_source


def iter_synthetic_videos(
    *,
    scale: Scale,
    dim: int,
    salience: float = 1.0,
    seed: int = 0,
    anomaly_length: tuple[float, float] = (0.1, 0.4),
    edge_margin: float = 0.1,
    scenes_per_video: int = 1,
    length_independent: bool = False,
    data_dir: Path | None = None,
    limit: int | None = None,
) -> Iterator[SyntheticVideo]:
    """Generate the videos of a scale one by one (see the module docstring for the model)."""
    if not 0 < anomaly_length[0] <= anomaly_length[1] < 1:
        raise UserError(f"anomaly_length must be shares 0 < low <= high < 1, got {anomaly_length}")
    if not 0 <= edge_margin < 0.5 or scenes_per_video < 1 or dim < 1 or salience < 0:
        raise UserError("need 0 <= edge_margin < 0.5, scenes_per_video >= 1, dim >= 1, salience >= 0")
    plan = _plan(scale, seed, data_dir, length_independent)
    shared = np.random.default_rng([seed, 1])
    scenes = (_LEVEL * np.abs(shared.standard_normal((_SCENES, dim)))).astype(np.float32)
    drift_basis = shared.standard_normal((_DRIFT_RANK, dim)).astype(np.float32) / np.sqrt(_DRIFT_RANK)
    patterns = np.abs(shared.standard_normal((_ABNORMAL_PATTERNS, dim))).astype(np.float32)
    patterns /= np.linalg.norm(patterns, axis=1, keepdims=True)
    # Two normal snippets of a video differ by noise (and a little drift): about sqrt(2 D) * noise apart.
    normal_distance = math.sqrt(2 * dim) * _NOISE
    count = len(plan.lengths) if limit is None else min(limit, len(plan.lengths))
    for index in range(count):
        rng = np.random.default_rng([seed, 2, index])
        length, label = int(plan.lengths[index]), int(plan.labels[index])
        parts = min(scenes_per_video, length)
        bounds = np.sort(rng.choice(np.arange(1, length), parts - 1, replace=False))
        chosen = rng.choice(_SCENES, parts, replace=parts > _SCENES)
        base = np.empty((length, dim), dtype=np.float32)
        for scene, start, end in zip(chosen, np.r_[0, bounds], np.r_[bounds, length], strict=True):
            base[start:end] = scenes[scene]
        base += _OFFSET * rng.standard_normal(dim, dtype=np.float32)
        walk = np.cumsum(rng.standard_normal((length, _DRIFT_RANK), dtype=np.float32), axis=0)
        base += _DRIFT * np.sqrt(dim) * (walk @ drift_basis) / np.sqrt(max(length, 1))
        base += _NOISE * rng.standard_normal((length, dim), dtype=np.float32)
        snippet_labels = np.zeros(length, dtype=np.float32)
        if label:
            span = max(1, round(rng.uniform(*anomaly_length) * length))
            first = math.ceil(edge_margin * length)
            last = max(first, length - first - span)
            start = int(rng.integers(first, last + 1)) if last >= first else 0
            snippet_labels[start : start + span] = 1
            pattern = patterns[rng.integers(_ABNORMAL_PATTERNS)]
            base[start : start + span] += salience * normal_distance * pattern
        np.maximum(base, 0, out=base)
        yield SyntheticVideo(f"{scale}_{index:05d}", base, label, snippet_labels, SNIPPET_LENGTH * length)


def make_synthetic_features(
    *, scale: Scale, dim: int, salience: float = 1.0, seed: int = 0, **options: object
) -> SyntheticFeatures:
    """A whole synthetic set in memory (options as ``iter_synthetic_videos``)."""
    videos = list(iter_synthetic_videos(scale=scale, dim=dim, salience=salience, seed=seed, **options))
    return SyntheticFeatures(
        features=[video.features for video in videos],
        video_ids=[video.video_id for video in videos],
        video_labels=np.array([video.label for video in videos]),
        snippet_labels=[video.snippet_labels for video in videos],
        num_frames=np.array([video.num_frames for video in videos]),
        length_source=describe_lengths(scale, seed=seed, data_dir=options.get("data_dir")),  # type: ignore[arg-type]
    )


def write_synthetic_features(out_dir: str | Path, *, scale: Scale, dim: int, **options: object) -> Path:
    """Write ``<id>.npy`` per video plus ``gt.csv`` and ``frames.csv``; one video in memory at a time."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    intervals, frames = io.StringIO(), io.StringIO()
    gt_writer, frames_writer = csv.writer(intervals), csv.writer(frames)
    gt_writer.writerow(["video_id", "start_frame", "end_frame"])
    frames_writer.writerow(["video_id", "num_frames"])
    for video in iter_synthetic_videos(scale=scale, dim=dim, **options):
        buffer = io.BytesIO()
        np.save(buffer, video.features)
        atomic_write_bytes(out / f"{video.video_id}.npy", buffer.getvalue())
        gt_writer.writerows([video.video_id, start, end] for start, end in video.intervals)
        frames_writer.writerow([video.video_id, video.num_frames])
    atomic_write_bytes(out / "gt.csv", intervals.getvalue().encode())
    atomic_write_bytes(out / "frames.csv", frames.getvalue().encode())
    return out
