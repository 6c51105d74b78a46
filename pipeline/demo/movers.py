"""What moves in the demo's clips: pedestrians arriving at a steady rate, and the events (a runner, a cyclist, a
van, a fight), each a ``Mover`` along waypoints reached at given frames and drawn in perspective."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np

from lanp_vad.pipeline.demo.painting import Color, Scene, fill_ellipse, fill_rect
from lanp_vad.pipeline.demo.plans import ClipPlan

_WALK_SPEED = 1.6  # pixels per frame at full perspective scale (about 1.4 m/s at 15 fps)

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


@dataclass
class Mover:
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

    def draw(self, canvas: np.ndarray, frame: int, scene: Scene) -> None:
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
    fill_ellipse(canvas, x + 3 * s, y, 7 * s, 2.2 * s, (0, 0, 0), alpha=0.3 * alpha)
    fill_rect(canvas, x - 3 * s + swing, y - 18 * s, x - 0.5 * s + swing, y, trousers, alpha)
    fill_rect(canvas, x + 0.5 * s - swing, y - 18 * s, x + 3 * s - swing, y, trousers, alpha)
    top = x + lean * direction * s
    fill_rect(canvas, top - 5 * s, y - 34 * s, top + 5 * s, y - 17 * s, shirt, alpha)
    fill_rect(canvas, top - 7 * s - swing, y - 33 * s, top - 5 * s - swing, y - 21 * s, shirt, alpha)
    fill_rect(canvas, top + 5 * s + swing, y - 33 * s, top + 7 * s + swing, y - 21 * s, shirt, alpha)
    fill_ellipse(canvas, top, y - 38.5 * s, 3.5 * s, 4 * s, skin, alpha)


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
    fill_ellipse(canvas, x, y, 16 * s, 2.5 * s, (0, 0, 0), alpha=0.3 * alpha)
    for wheel in (-10, 10):
        fill_ellipse(canvas, x + wheel * s, y - 7 * s, 7 * s, 7 * s, (20, 20, 20), alpha, hole=0.75)
    fill_rect(canvas, x - 10 * s, y - 8 * s, x + 10 * s, y - 6 * s, frame_color, alpha)
    fill_rect(canvas, x - 2 * s, y - 16 * s, x, y - 7 * s, frame_color, alpha)
    pedal = 3 * s * np.sin(0.8 * time)
    fill_rect(canvas, x - 2 * s + pedal, y - 18 * s, x + 1 * s + pedal, y - 7 * s, trousers, alpha)
    lean = 5 * direction * s
    fill_rect(canvas, x - 4 * s + lean, y - 32 * s, x + 4 * s + lean, y - 17 * s, shirt, alpha)
    fill_rect(canvas, x + lean, y - 28 * s, x + 10 * direction * s + lean, y - 25 * s, shirt, alpha)
    fill_ellipse(canvas, x + 1.5 * lean, y - 36 * s, 3.5 * s, 4 * s, skin, alpha)


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
    fill_ellipse(canvas, x, y, half + 6 * s, 5 * s, (0, 0, 0), alpha=0.4 * alpha)
    fill_rect(canvas, x - half, y - 30 * s, x + half, y - 7 * s, body, alpha)
    fill_rect(canvas, x - 0.5 * half, y - 46 * s, x + 0.45 * half, y - 29 * s, body, alpha)
    fill_rect(canvas, x - 0.42 * half, y - 43 * s, x - 0.05 * half, y - 31 * s, (120, 150, 175), alpha)
    fill_rect(canvas, x + 0.02 * half, y - 43 * s, x + 0.38 * half, y - 31 * s, (120, 150, 175), alpha)
    front = x + direction * (half - 4 * s)
    fill_rect(canvas, front - 3 * s, y - 26 * s, front + 3 * s, y - 21 * s, (255, 250, 210), alpha)
    for wheel in (-0.6, 0.6):
        fill_ellipse(canvas, x + wheel * half, y - 7 * s, 8 * s, 8 * s, (15, 15, 15), alpha)
        fill_ellipse(canvas, x + wheel * half, y - 7 * s, 3.5 * s, 3.5 * s, (150, 150, 150), alpha)


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


def _timed(points: np.ndarray, start: float, speed: float, scene: Scene) -> np.ndarray:
    """Frames at which a mover leaving ``points[0]`` at ``start`` reaches each point at ``speed``
    (perspective-scaled)."""
    lengths = np.linalg.norm(np.diff(points, axis=0), axis=1)
    scales = np.array([scene.scale(y) for y in (points[:-1, 1] + points[1:, 1]) / 2])
    return start + np.concatenate([[0.0], np.cumsum(lengths / (speed * scales))])


def walkers(scene: Scene, num_frames: int, density: float, rng: np.random.Generator) -> list[Mover]:
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
        movers.append(Mover("person", points, _timed(points, time, speed, scene), _person_colors(rng)))


def _crossings(scene: Scene, start: int, end: int, speed: float, zigzag: bool, rng: np.random.Generator) -> np.ndarray:
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


def event_movers(plan: ClipPlan, scene: Scene, rng: np.random.Generator) -> list[Mover]:
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
        return [Mover(look, points, times, colors, blur=1 if look == "vehicle" else 3)]
    return []


def _fighters(plan: ClipPlan, start: int, end: int, scene: Scene, rng: np.random.Generator) -> list[Mover]:
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
        movers.append(Mover("runner", points, times, _person_colors(rng), jitter=jitter, blur=2))
    return movers
