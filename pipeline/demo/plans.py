"""The demo archive's plans: what each synthetic clip shows (its seed, and its event's kind and frames), and the
camera settings every clip shares. Pure data: rendering is ``pipeline.demo.scenes``'s job."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

AnomalyKind = Literal["runner", "cyclist", "vehicle", "lights_out", "camera_shake", "fight"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = ("vehicle", "runner", "lights_out", "fight", "cyclist", "camera_shake")

_EDGE_MARGIN = 0.25  # share of each clip at its start and at its end that is always ordinary activity


@dataclass(frozen=True)
class SceneSettings:
    """The camera and its picture: size, frame rate, crowd density, noise, flicker, and H.264 quality."""

    width: int = 320
    height: int = 240
    fps: int = 15
    walkers: float = 4.0  # mean number of pedestrians in view
    noise: float = 2.5  # sensor noise, standard deviation on 0-255
    flicker: float = 0.02  # relative amplitude of the lighting flicker
    crf: int = 20  # H.264 constant rate factor of the written clips

    def __post_init__(self) -> None:
        if self.width < 64 or self.height < 64 or self.width % 2 or self.height % 2:
            raise ValueError(f"frame size {self.width}x{self.height} must be even and at least 64x64")
        if self.fps < 1:
            raise ValueError(f"fps must be at least 1, got {self.fps}")


@dataclass(frozen=True)
class ClipPlan:
    """One clip to render: its id, length, seed, and its anomaly (kind and frame interval) if it has one."""

    video_id: str
    num_frames: int
    seed: int
    anomaly: AnomalyKind | None = None
    anomaly_start: int | None = None  # first abnormal frame (0-based)
    anomaly_end: int | None = None  # one past the last abnormal frame

    @property
    def is_abnormal(self) -> bool:
        return self.anomaly is not None

    def frame_labels(self) -> np.ndarray:
        """Per-frame ground truth, 0/1 uint8 of length ``num_frames``."""
        labels = np.zeros(self.num_frames, dtype=np.uint8)
        if self.anomaly is not None:
            labels[self.anomaly_start : self.anomaly_end] = 1
        return labels


def plan_clips(
    num_clips: int,
    *,
    num_frames: int,
    abnormal_fraction: float = 0.5,
    seed: int = 0,
    prefix: str = "clip",
    kinds: Sequence[AnomalyKind] = ANOMALY_KINDS,
) -> list[ClipPlan]:
    """Plans for an archive: ``round(abnormal_fraction * num_clips)`` abnormal clips cycling through ``kinds``,
    interleaved with normal ones; each event lasts 20-35 % of its clip and stays out of the outer quarters."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be at least 1, got {num_clips}")
    if num_frames < 64:
        raise ValueError(f"clips need at least 64 frames, got {num_frames}")
    if not 0 <= abnormal_fraction <= 1:
        raise ValueError(f"abnormal_fraction must be in [0, 1], got {abnormal_fraction}")
    unknown = [kind for kind in kinds if kind not in ANOMALY_KINDS]
    if unknown or not kinds:
        raise ValueError(f"unknown anomaly kinds {unknown}; choose from {', '.join(ANOMALY_KINDS)}")
    rng = np.random.default_rng(seed)
    num_abnormal = round(abnormal_fraction * num_clips)
    abnormal = np.zeros(num_clips, dtype=bool)
    abnormal[rng.permutation(num_clips)[:num_abnormal]] = True
    plans = []
    kind_index = 0
    for index in range(num_clips):
        clip_seed = int(rng.integers(2**31))
        video_id = f"{prefix}{index:03d}"
        if not abnormal[index]:
            plans.append(ClipPlan(video_id, num_frames, clip_seed))
            continue
        kind = kinds[kind_index % len(kinds)]
        kind_index += 1
        duration = int(rng.uniform(0.20, 0.35) * num_frames)
        earliest = int(_EDGE_MARGIN * num_frames)
        latest = int((1 - _EDGE_MARGIN) * num_frames) - duration
        start = int(rng.integers(earliest, max(latest, earliest) + 1))
        plans.append(ClipPlan(video_id, num_frames, clip_seed, kind, start, start + duration))
    return plans
