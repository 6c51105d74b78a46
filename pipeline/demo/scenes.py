"""Synthetic surveillance-like clips with known anomalies, written with PyAV: the offline demo's archive.

A fixed camera looks down at a paved plaza in front of a building: tiles, a walkway, lawns, benches, lamp posts
and trees, with mild sensor noise and lighting flicker. Pedestrians walk across at walking speed, arriving at a
steady rate so that ordinary activity looks the same all clip long. An abnormal clip has one event in its middle
(never in its first or last quarter, so LANP's normality prior holds): a runner zig-zagging at five times walking
speed, a cyclist, a car crossing the plaza, the lights going out, the camera being shaken, or a fight (a cluster
of people jostling erratically). The ground truth is the event's frame interval, 0-based and end-exclusive.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path
from typing import Literal

import av
import numpy as np

AnomalyKind = Literal["runner", "cyclist", "vehicle", "lights_out", "camera_shake", "fight"]
ANOMALY_KINDS: tuple[AnomalyKind, ...] = ("vehicle", "runner", "lights_out", "fight", "cyclist", "camera_shake")

GROUND_TRUTH_FILE = "ground_truth.csv"
FRAMES_FILE = "frames.csv"
CLIPS_FILE = "clips.json"

_VIEW_MARGIN = 16  # pixels of world around the view, so a shaken camera never shows an edge
_WALK_SPEED = 1.6  # pixels per frame at full perspective scale (about 1.4 m/s at 15 fps)
_EDGE_MARGIN = 0.25  # share of each clip at its start and at its end that is always ordinary activity

Color = tuple[float, float, float]
_SHIRTS: tuple[Color, ...] = (
    (200, 40, 40),
    (40, 70, 160),
    (230, 230, 225),
    (30, 30, 35),
    (60, 130, 70),
    (220, 170, 40),
    (120, 60, 140),
    (90, 90, 95),
    (200, 110, 150),
    (70, 150, 190),
)
_TROUSERS: tuple[Color, ...] = ((35, 40, 60), (30, 30, 30), (90, 80, 70), (60, 70, 110), (140, 130, 110))
_SKIN: tuple[Color, ...] = ((235, 195, 160), (200, 150, 110), (140, 95, 65), (95, 65, 45))
_CARS: tuple[Color, ...] = ((180, 20, 25), (20, 40, 120), (225, 225, 230), (25, 25, 28), (150, 155, 160))


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


@dataclass(frozen=True)
class SyntheticArchive:
    """What ``write_archive`` wrote: the clip files, their plans, and the ground-truth / frame-count CSVs."""

    root: Path
    clips: list[ClipPlan]
    paths: dict[str, Path]
    ground_truth_csv: Path
    frames_csv: Path
    settings: SceneSettings = field(default_factory=SceneSettings)

    @property
    def num_frames(self) -> int:
        return sum(clip.num_frames for clip in self.clips)


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


# --- drawing primitives on a float32 (H, W, 3) canvas -------------------------------------------------------------


def _fill_rect(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color, alpha: float = 1) -> None:
    height, width = canvas.shape[:2]
    left, right = max(int(x0 + 0.5), 0), min(int(x1 + 0.5), width)
    top, bottom = max(int(y0 + 0.5), 0), min(int(y1 + 0.5), height)
    if left < right and top < bottom:
        region = canvas[top:bottom, left:right]
        if alpha == 1:
            region[:] = color
        else:
            region += alpha * (np.asarray(color, dtype=np.float32) - region)


def _fill_ellipse(
    canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, color: Color, alpha: float = 1, hole: float = 0
) -> None:
    """An ellipse (a ring when ``hole`` > 0: the inner share of the radius left unpainted)."""
    height, width = canvas.shape[:2]
    left, right = max(int(cx - rx), 0), min(int(cx + rx) + 2, width)
    top, bottom = max(int(cy - ry), 0), min(int(cy + ry) + 2, height)
    if left >= right or top >= bottom or rx <= 0 or ry <= 0:
        return
    ys, xs = np.ogrid[top:bottom, left:right]
    radius = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
    mask = (radius <= 1) & (radius >= hole**2)
    region = canvas[top:bottom, left:right]
    region[mask] += alpha * (np.asarray(color, dtype=np.float32) - region[mask])


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Low-frequency texture in [-1, 1]: a coarse random grid, bilinearly upsampled."""
    coarse = rng.uniform(-1, 1, size=(height // cell + 2, width // cell + 2)).astype(np.float32)
    ys = np.arange(height, dtype=np.float32) / cell
    xs = np.arange(width, dtype=np.float32) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


class _Scene:
    """The static world of one camera (larger than the view by a margin) and its perspective."""

    def __init__(self, settings: SceneSettings, rng: np.random.Generator):
        self.settings = settings
        self.height = settings.height + 2 * _VIEW_MARGIN
        self.width = settings.width + 2 * _VIEW_MARGIN
        self.horizon = 0.34 * self.height  # the building's foot: the far edge of the plaza
        self.background = self._paint(rng)

    def scale(self, y: float) -> float:
        """Perspective: the size of a 1-unit object standing at image row ``y`` (1.0 at the bottom)."""
        return 0.35 + 0.65 * max(y - self.horizon, 0) / (self.height - self.horizon)

    def _paint(self, rng: np.random.Generator) -> np.ndarray:
        height, width, horizon = self.height, self.width, int(self.horizon)
        canvas = np.empty((height, width, 3), dtype=np.float32)
        # Building facade with rows of windows, a darker plinth and a door.
        wall = np.array((170, 150, 125), dtype=np.float32) + rng.uniform(-20, 20, 3).astype(np.float32)
        canvas[:horizon] = wall + 12 * _smooth_noise(rng, horizon, width, 24)[..., None]
        for row_top in range(6, horizon - 20, 26):
            for column in range(8, width - 16, 30):
                lit = rng.random() < 0.3
                _fill_rect(canvas, column, row_top, column + 16, row_top + 16, (235, 220, 150) if lit else (60, 70, 85))
        _fill_rect(canvas, 0, horizon - 8, width, horizon, (110, 100, 90))
        door = rng.uniform(0.3, 0.7) * width
        _fill_rect(canvas, door, horizon - 30, door + 22, horizon, (70, 50, 40))
        # Paving: grey base, large-scale stains, fine grain, tile joints that tighten with distance.
        ground_rows = height - horizon
        base = np.array((132, 128, 122), dtype=np.float32) + rng.uniform(-10, 10) + rng.uniform(-3, 3, 3)
        stains = 14 * _smooth_noise(rng, ground_rows, width, 40) + 5 * _smooth_noise(rng, ground_rows, width, 6)
        grain = rng.normal(0, 4, size=(ground_rows, width)).astype(np.float32)
        canvas[horizon:] = base + (stains + grain)[..., None]
        row = float(horizon)
        while row < height:
            step = 26 * self.scale(row)
            _fill_rect(canvas, 0, row, width, row + 1, (95, 93, 90), alpha=0.6)
            row += step
        center = width / 2
        for offset in range(-12, 13):
            # Joints converging towards a vanishing point above the building.
            for y in range(horizon, height, 2):
                x = center + offset * 30 * self.scale(y)
                _fill_rect(canvas, x, y, x + 1, y + 2, (95, 93, 90), alpha=0.5)
        # A lighter walkway band across the plaza and lawns in the two front corners.
        walk_top, walk_bottom = horizon + 0.3 * ground_rows, horizon + 0.55 * ground_rows
        _fill_rect(canvas, 0, walk_top, width, walk_bottom, (200, 195, 185), alpha=0.25)
        for side in (0, 1):
            lawn = np.zeros((height, width), dtype=bool)
            ys, xs = np.ogrid[:height, :width]
            edge = (ys - (horizon + 0.72 * ground_rows)) * 1.6
            lawn |= (xs < edge) if side == 0 else (width - xs < edge)
            green = np.array((70, 125, 55), dtype=np.float32)
            texture = 18 * _smooth_noise(rng, height, width, 5)[..., None]
            canvas[lawn] = (green + texture)[lawn]
        # Street furniture: benches, lamp posts and trees, bigger nearer the camera.
        for _ in range(3):
            x, y = rng.uniform(0.1, 0.9) * width, horizon + rng.uniform(0.05, 0.25) * ground_rows
            s = self.scale(y)
            _fill_rect(canvas, x, y - 9 * s, x + 34 * s, y - 5 * s, (110, 75, 45))
            _fill_rect(canvas, x + 2 * s, y - 5 * s, x + 4 * s, y, (50, 50, 50))
            _fill_rect(canvas, x + 30 * s, y - 5 * s, x + 32 * s, y, (50, 50, 50))
        for x in np.linspace(0.12, 0.88, 4) * width:
            y = horizon + 0.22 * ground_rows
            s = self.scale(y)
            _fill_rect(canvas, x, y - 60 * s, x + 2.5 * s, y, (45, 48, 52))
            _fill_ellipse(canvas, x + 1, y - 61 * s, 4 * s, 3 * s, (250, 245, 215))
        for x in (0.05 * width, 0.95 * width):
            y = horizon + 0.9 * ground_rows
            s = self.scale(y)
            _fill_rect(canvas, x - 3 * s, y - 45 * s, x + 3 * s, y, (85, 60, 40))
            _fill_ellipse(canvas, x, y - 55 * s, 22 * s, 18 * s, (40, 90, 40))
            _fill_ellipse(canvas, x - 6 * s, y - 60 * s, 12 * s, 10 * s, (55, 110, 50), alpha=0.8)
        return np.clip(canvas, 0, 255)


@dataclass
class _Mover:
    """Something that moves along waypoints (world pixels) reached at given frames, drawn as ``look``."""

    look: Literal["person", "runner", "cyclist", "vehicle"]
    points: np.ndarray  # (K, 2) x, y of the feet / wheels on the ground
    times: np.ndarray  # (K,) frame at which each point is reached
    colors: tuple[Color, ...]
    jitter: np.ndarray | None = None  # (num_frames, 2) erratic offsets (fights), zero outside the event
    blur: int = 1  # sub-frame positions drawn per frame (motion blur of fast movers)

    def active(self, frame: int) -> bool:
        return self.times[0] <= frame <= self.times[-1]

    def position(self, time: float) -> tuple[float, float]:
        x = float(np.interp(time, self.times, self.points[:, 0]))
        y = float(np.interp(time, self.times, self.points[:, 1]))
        if self.jitter is not None:
            dx, dy = self.jitter[min(int(time), len(self.jitter) - 1)]
            x, y = x + dx, y + dy
        return x, y

    def draw(self, canvas: np.ndarray, frame: int, scene: _Scene) -> None:
        for step in range(self.blur):
            time = frame - step / self.blur
            x, y = self.position(time)
            ahead_x, _ = self.position(time + 1)
            direction = 1.0 if ahead_x >= x else -1.0
            alpha = 1.0 / (1 + 0.6 * step)
            draw = _DRAWERS[self.look]
            draw(canvas, x, y, scene.scale(y), self.colors, time, direction, alpha)


def _draw_person(
    canvas: np.ndarray,
    x: float,
    y: float,
    s: float,
    colors: tuple[Color, ...],
    time: float,
    direction: float,
    alpha: float,
    *,
    stride: float = 2.5,
    lean: float = 0.0,
    cadence: float = 0.35,
) -> None:
    shirt, trousers, skin = colors[:3]
    swing = stride * s * np.sin(cadence * time)
    _fill_ellipse(canvas, x + 3 * s, y, 7 * s, 2.2 * s, (0, 0, 0), alpha=0.3 * alpha)
    _fill_rect(canvas, x - 3 * s + swing, y - 18 * s, x - 0.5 * s + swing, y, trousers, alpha)
    _fill_rect(canvas, x + 0.5 * s - swing, y - 18 * s, x + 3 * s - swing, y, trousers, alpha)
    top = x + lean * direction * s
    _fill_rect(canvas, top - 5 * s, y - 34 * s, top + 5 * s, y - 17 * s, shirt, alpha)
    _fill_rect(canvas, top - 7 * s - swing, y - 33 * s, top - 5 * s - swing, y - 21 * s, shirt, alpha)
    _fill_rect(canvas, top + 5 * s + swing, y - 33 * s, top + 7 * s + swing, y - 21 * s, shirt, alpha)
    _fill_ellipse(canvas, top, y - 38.5 * s, 3.5 * s, 4 * s, skin, alpha)


def _draw_cyclist(
    canvas: np.ndarray,
    x: float,
    y: float,
    s: float,
    colors: tuple[Color, ...],
    time: float,
    direction: float,
    alpha: float,
) -> None:
    shirt, trousers, skin, frame_color = colors[:4]
    _fill_ellipse(canvas, x, y, 16 * s, 2.5 * s, (0, 0, 0), alpha=0.3 * alpha)
    for wheel in (-10, 10):
        _fill_ellipse(canvas, x + wheel * s, y - 7 * s, 7 * s, 7 * s, (20, 20, 20), alpha, hole=0.75)
    _fill_rect(canvas, x - 10 * s, y - 8 * s, x + 10 * s, y - 6 * s, frame_color, alpha)
    _fill_rect(canvas, x - 2 * s, y - 16 * s, x, y - 7 * s, frame_color, alpha)
    pedal = 3 * s * np.sin(0.8 * time)
    _fill_rect(canvas, x - 2 * s + pedal, y - 18 * s, x + 1 * s + pedal, y - 7 * s, trousers, alpha)
    lean = 5 * direction * s
    _fill_rect(canvas, x - 4 * s + lean, y - 32 * s, x + 4 * s + lean, y - 17 * s, shirt, alpha)
    _fill_rect(canvas, x + lean, y - 28 * s, x + 10 * direction * s + lean, y - 25 * s, shirt, alpha)
    _fill_ellipse(canvas, x + 1.5 * lean, y - 36 * s, 3.5 * s, 4 * s, skin, alpha)


def _draw_vehicle(
    canvas: np.ndarray,
    x: float,
    y: float,
    s: float,
    colors: tuple[Color, ...],
    time: float,
    direction: float,
    alpha: float,
) -> None:
    body = colors[0]
    s *= 1.3  # a van: about 6 m long beside 1.7 m people
    half = 45 * s
    _fill_ellipse(canvas, x, y, half + 6 * s, 5 * s, (0, 0, 0), alpha=0.4 * alpha)
    _fill_rect(canvas, x - half, y - 30 * s, x + half, y - 7 * s, body, alpha)
    _fill_rect(canvas, x - 0.5 * half, y - 46 * s, x + 0.45 * half, y - 29 * s, body, alpha)
    _fill_rect(canvas, x - 0.42 * half, y - 43 * s, x - 0.05 * half, y - 31 * s, (120, 150, 175), alpha)
    _fill_rect(canvas, x + 0.02 * half, y - 43 * s, x + 0.38 * half, y - 31 * s, (120, 150, 175), alpha)
    front = x + direction * (half - 4 * s)
    _fill_rect(canvas, front - 3 * s, y - 26 * s, front + 3 * s, y - 21 * s, (255, 250, 210), alpha)
    for wheel in (-0.6, 0.6):
        _fill_ellipse(canvas, x + wheel * half, y - 7 * s, 8 * s, 8 * s, (15, 15, 15), alpha)
        _fill_ellipse(canvas, x + wheel * half, y - 7 * s, 3.5 * s, 3.5 * s, (150, 150, 150), alpha)


_DRAWERS = {
    "person": _draw_person,
    "runner": partial(_draw_person, stride=6, lean=4, cadence=0.9),
    "cyclist": _draw_cyclist,
    "vehicle": _draw_vehicle,
}


def _person_colors(rng: np.random.Generator) -> tuple[Color, ...]:
    return (
        _SHIRTS[rng.integers(len(_SHIRTS))],
        _TROUSERS[rng.integers(len(_TROUSERS))],
        _SKIN[rng.integers(len(_SKIN))],
    )


def _timed(points: np.ndarray, start: float, speed: float, scene: _Scene) -> np.ndarray:
    """Frames at which a mover leaving ``points[0]`` at ``start`` reaches each point at ``speed``
    (perspective-scaled)."""
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    scales = np.array([scene.scale(y) for y in (points[:-1, 1] + points[1:, 1]) / 2])
    return start + np.concatenate([[0.0], np.cumsum(lengths / (speed * scales))])


def _walkers(scene: _Scene, num_frames: int, density: float, rng: np.random.Generator) -> list[_Mover]:
    """Pedestrians crossing the plaza, arriving as a Poisson process that starts before the clip (steady state)."""
    width, horizon, height = scene.width, scene.horizon, scene.height
    crossing = width / (_WALK_SPEED * 0.65)  # typical frames in view
    rate = density / crossing
    movers = []
    time = -2 * crossing
    while True:
        time += rng.exponential(1 / rate)
        if time > num_frames:
            return movers
        y_start = rng.uniform(horizon + 0.08 * (height - horizon), height - 4)
        y_end = np.clip(y_start + rng.normal(0, 25), horizon + 0.08 * (height - horizon), height - 4)
        x_start, x_end = (-20, width + 20) if rng.random() < 0.5 else (width + 20, -20)
        middle = np.array([(x_start + x_end) / 2 + rng.normal(0, 30), (y_start + y_end) / 2 + rng.normal(0, 10)])
        points = np.array([[x_start, y_start], middle, [x_end, y_end]])
        speed = _WALK_SPEED * rng.uniform(0.8, 1.2)
        movers.append(_Mover("person", points, _timed(points, time, speed, scene), _person_colors(rng)))


def _crossings(scene: _Scene, start: int, end: int, speed: float, zigzag: bool, rng: np.random.Generator) -> np.ndarray:
    """Waypoints across the near half of the plaza, from off-view to off-view, crossing it as often as ``speed``
    allows between ``start`` and ``end``; erratic (random rows at every waypoint) when ``zigzag``."""
    width, low, high = scene.width, scene.horizon + 0.45 * (scene.height - scene.horizon), scene.height - 6
    crossing = width + 80
    passes = max(1, int(round(speed * 0.7 * (end - start) / crossing)))
    xs = [-40.0, width + 40.0] * (passes // 2 + 1)
    xs = xs[: passes + 1] if rng.random() < 0.5 else [width - x for x in xs[: passes + 1]]
    points = []
    for a, b in zip(xs[:-1], xs[1:], strict=True):
        for fraction in np.linspace(0, 1, 5)[:-1]:
            y = rng.uniform(low, high) if zigzag else (low + high) / 2
            points.append([a + fraction * (b - a), y if zigzag else y + rng.normal(0, 5)])
    points.append([xs[-1], rng.uniform(low, high)])
    return np.asarray(points)


def _event_movers(plan: ClipPlan, scene: _Scene, rng: np.random.Generator) -> list[_Mover]:
    """The moving part of an anomaly: a fast mover in view exactly during the plan's interval, or fighters who
    jostle during it; nothing for the whole-view events (lights, camera)."""
    start, end = plan.anomaly_start, plan.anomaly_end
    assert start is not None and end is not None
    if plan.anomaly == "fight":
        return _fighters(plan, start, end, scene, rng)
    if plan.anomaly in ("runner", "cyclist", "vehicle"):
        speed = {"runner": 5.0, "cyclist": 4.0, "vehicle": 2.5}[plan.anomaly] * _WALK_SPEED
        points = _crossings(scene, start, end, speed, zigzag=plan.anomaly == "runner", rng=rng)
        times = _timed(points, 0.0, 1.0, scene)
        times = start + (times - times[0]) * (end - 1 - start) / (times[-1] - times[0])  # fit the interval exactly
        if plan.anomaly == "vehicle":
            colors: tuple[Color, ...] = (_CARS[rng.integers(len(_CARS))],)
        else:
            colors = (*_person_colors(rng), _CARS[rng.integers(len(_CARS))])
        look = plan.anomaly
        return [_Mover(look, points, times, colors, blur=1 if look == "vehicle" else 3)]
    return []


def _fighters(plan: ClipPlan, start: int, end: int, scene: _Scene, rng: np.random.Generator) -> list[_Mover]:
    """Five to eight people who walk to a meeting point, jostle erratically there from ``start`` to ``end``,
    then walk off."""
    center = np.array(
        [rng.uniform(0.3, 0.7) * scene.width, scene.horizon + rng.uniform(0.5, 0.85) * (scene.height - scene.horizon)]
    )
    movers = []
    for _ in range(int(rng.integers(5, 9))):
        spot = center + rng.normal(0, 7, size=2)
        come = spot + rng.normal(0, 1, size=2) * np.array([70, 20])
        leave = spot + rng.normal(0, 1, size=2) * np.array([90, 20])
        arrival = _timed(np.array([come, spot]), 0.0, _WALK_SPEED, scene)[1]
        points = np.array([come, spot, spot, leave])
        times = np.array([start - arrival, start, end - 1, end - 1 + arrival])
        jitter = np.zeros((plan.num_frames, 2))
        jitter[start:end] = rng.normal(0, 1, size=(end - start, 2)) * np.array([7.0, 3.0])
        movers.append(_Mover("runner", points, times, _person_colors(rng), jitter=jitter, blur=2))
    return movers


def render_clip(
    plan: ClipPlan, settings: SceneSettings = SceneSettings(), *, scene_seed: int = 0
) -> Iterator[np.ndarray]:
    """Frames of one clip, uint8 (height, width, 3) RGB, deterministic in ``scene_seed`` (the camera) and the
    plan's seed (the people and the event)."""
    scene = _Scene(settings, np.random.default_rng(scene_seed))
    rng = np.random.default_rng(plan.seed)
    movers = _walkers(scene, plan.num_frames, settings.walkers, rng)
    if plan.anomaly is not None:
        movers += _event_movers(plan, scene, rng)
    frames = np.arange(plan.num_frames)
    gain = 1 + settings.flicker * (
        np.sin(2 * np.pi * frames / rng.uniform(20, 60)) * 0.6 + rng.normal(0, 0.4, plan.num_frames)
    )
    tint = np.ones((plan.num_frames, 3), dtype=np.float32)
    offsets = np.zeros((plan.num_frames, 2))
    if plan.anomaly == "lights_out":
        tint[plan.anomaly_start : plan.anomaly_end] = (0.45, 0.42, 0.55)  # dim, bluish emergency light
    elif plan.anomaly == "camera_shake":
        shake = rng.normal(0, 7, size=(plan.anomaly_end - plan.anomaly_start, 2))
        offsets[plan.anomaly_start : plan.anomaly_end] = np.clip(shake, 1 - _VIEW_MARGIN, _VIEW_MARGIN - 1)
    noise_bank = rng.normal(0, settings.noise, size=(8, settings.height, settings.width, 1)).astype(np.float32)
    height, width = settings.height, settings.width
    canvas = np.empty_like(scene.background)
    view = np.empty((height, width, 3), dtype=np.float32)
    for frame in frames:
        np.copyto(canvas, scene.background)
        for mover in sorted((m for m in movers if m.active(frame)), key=lambda m: m.position(frame)[1]):
            mover.draw(canvas, int(frame), scene)
        # The view moves from the previous frame's offset to this one's during the exposure: a shaken camera blurs.
        previous, current = offsets[max(frame - 1, 0)], offsets[frame]
        taps = (1.0,) if np.array_equal(previous, current) else (0.25, 0.5, 0.75, 1.0)
        for tap, share in enumerate(taps):
            dy, dx = np.round(previous + share * (current - previous)).astype(int) + _VIEW_MARGIN
            crop = canvas[dy : dy + height, dx : dx + width]
            if tap:
                view += crop
            else:
                np.copyto(view, crop)
        view *= gain[frame] * tint[frame] / len(taps)
        view += noise_bank[rng.integers(len(noise_bank))]
        np.clip(view, 0, 255, out=view)
        yield view.astype(np.uint8)


def write_clip(
    path: str | Path, plan: ClipPlan, settings: SceneSettings = SceneSettings(), *, scene_seed: int = 0
) -> Path:
    """Render one clip and encode it as H.264 (yuv420p) in an mp4 at the settings' frame rate."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(settings.fps))
        stream.width, stream.height, stream.pix_fmt = settings.width, settings.height, "yuv420p"
        stream.options = {"crf": str(settings.crf), "preset": "veryfast"}
        for image in render_clip(plan, settings, scene_seed=scene_seed):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_ground_truth(plans: Sequence[ClipPlan], ground_truth_csv: Path, frames_csv: Path) -> None:
    """The generic ground-truth CSV (``video_id,start_frame,end_frame``: abnormal intervals, 0-based,
    end-exclusive; normal clips have no row) and the frame counts (``video_id,num_frames``)."""
    with Path(ground_truth_csv).open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["video_id", "start_frame", "end_frame"])
        writer.writerows([p.video_id, p.anomaly_start, p.anomaly_end] for p in plans if p.is_abnormal)
    with Path(frames_csv).open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["video_id", "num_frames"])
        writer.writerows([p.video_id, p.num_frames] for p in plans)


def write_archive(
    root: str | Path, plans: Sequence[ClipPlan], settings: SceneSettings = SceneSettings(), *, scene_seed: int = 0
) -> SyntheticArchive:
    """Write every planned clip as ``<root>/<video_id>.mp4`` plus ``ground_truth.csv``, ``frames.csv`` and
    ``clips.json`` (the plans and the scene settings) beside them."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        plan.video_id: write_clip(root / f"{plan.video_id}.mp4", plan, settings, scene_seed=scene_seed)
        for plan in plans
    }
    write_ground_truth(plans, root / GROUND_TRUTH_FILE, root / FRAMES_FILE)
    description = {"scene_seed": scene_seed, "settings": asdict(settings), "clips": [asdict(p) for p in plans]}
    (root / CLIPS_FILE).write_text(json.dumps(description, indent=2))
    return SyntheticArchive(root, list(plans), paths, root / GROUND_TRUTH_FILE, root / FRAMES_FILE, settings)
