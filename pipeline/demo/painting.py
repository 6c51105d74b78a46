"""Drawing on a float32 (H, W, 3) canvas, and the static world of the demo's camera: a paved plaza in front of a
building, with lawns, benches, lamp posts and trees, larger than the view by a margin so a shaken camera never
shows an edge."""

from __future__ import annotations

import numpy as np

from lanp_vad.pipeline.demo.plans import SceneSettings

VIEW_MARGIN = 16  # pixels of world around the view, so a shaken camera never shows an edge

Color = tuple[float, float, float]


def fill_rect(canvas: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: Color, alpha: float = 1) -> None:
    height, width = canvas.shape[:2]
    left, right = max(int(x0 + 0.5), 0), min(int(x1 + 0.5), width)
    top, bottom = max(int(y0 + 0.5), 0), min(int(y1 + 0.5), height)
    if left < right and top < bottom:
        region = canvas[top:bottom, left:right]
        if alpha == 1:
            region[:] = color
        else:
            region += alpha * (np.asarray(color, dtype=np.float32) - region)


def fill_ellipse(
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


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    """Low-frequency texture in [-1, 1]: a coarse random grid, bilinearly upsampled."""
    coarse = rng.uniform(-1, 1, size=(height // cell + 2, width // cell + 2)).astype(np.float32)
    ys = np.arange(height, dtype=np.float32) / cell
    xs = np.arange(width, dtype=np.float32) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


class Scene:
    """The static world of one camera (larger than the view by a margin) and its perspective."""

    def __init__(self, settings: SceneSettings, rng: np.random.Generator):
        self.settings = settings
        self.height = settings.height + 2 * VIEW_MARGIN
        self.width = settings.width + 2 * VIEW_MARGIN
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
        canvas[:horizon] = wall + 12 * smooth_noise(rng, horizon, width, 24)[..., None]
        for row_top in range(6, horizon - 20, 26):
            for column in range(8, width - 16, 30):
                lit = rng.random() < 0.3
                fill_rect(canvas, column, row_top, column + 16, row_top + 16, (235, 220, 150) if lit else (60, 70, 85))
        fill_rect(canvas, 0, horizon - 8, width, horizon, (110, 100, 90))
        door = rng.uniform(0.3, 0.7) * width
        fill_rect(canvas, door, horizon - 30, door + 22, horizon, (70, 50, 40))
        # Paving: grey base, large-scale stains, fine grain, tile joints that tighten with distance.
        ground_rows = height - horizon
        base = np.array((132, 128, 122), dtype=np.float32) + rng.uniform(-10, 10) + rng.uniform(-3, 3, 3)
        stains = 14 * smooth_noise(rng, ground_rows, width, 40) + 5 * smooth_noise(rng, ground_rows, width, 6)
        grain = rng.normal(0, 4, size=(ground_rows, width)).astype(np.float32)
        canvas[horizon:] = base + (stains + grain)[..., None]
        row = float(horizon)
        while row < height:
            step = 26 * self.scale(row)
            fill_rect(canvas, 0, row, width, row + 1, (95, 93, 90), alpha=0.6)
            row += step
        center = width / 2
        for offset in range(-12, 13):
            # Joints converging towards a vanishing point above the building.
            for y in range(horizon, height, 2):
                x = center + offset * 30 * self.scale(y)
                fill_rect(canvas, x, y, x + 1, y + 2, (95, 93, 90), alpha=0.5)
        # A lighter walkway band across the plaza and lawns in the two front corners.
        walk_top, walk_bottom = horizon + 0.3 * ground_rows, horizon + 0.55 * ground_rows
        fill_rect(canvas, 0, walk_top, width, walk_bottom, (200, 195, 185), alpha=0.25)
        for side in (0, 1):
            lawn = np.zeros((height, width), dtype=bool)
            ys, xs = np.ogrid[:height, :width]
            edge = (ys - (horizon + 0.72 * ground_rows)) * 1.6
            lawn |= (xs < edge) if side == 0 else (width - xs < edge)
            green = np.array((70, 125, 55), dtype=np.float32)
            texture = 18 * smooth_noise(rng, height, width, 5)[..., None]
            canvas[lawn] = (green + texture)[lawn]
        # Street furniture: benches, lamp posts and trees, bigger nearer the camera.
        for _ in range(3):
            x, y = rng.uniform(0.1, 0.9) * width, horizon + rng.uniform(0.05, 0.25) * ground_rows
            s = self.scale(y)
            fill_rect(canvas, x, y - 9 * s, x + 34 * s, y - 5 * s, (110, 75, 45))
            fill_rect(canvas, x + 2 * s, y - 5 * s, x + 4 * s, y, (50, 50, 50))
            fill_rect(canvas, x + 30 * s, y - 5 * s, x + 32 * s, y, (50, 50, 50))
        for x in np.linspace(0.12, 0.88, 4) * width:
            y = horizon + 0.22 * ground_rows
            s = self.scale(y)
            fill_rect(canvas, x, y - 60 * s, x + 2.5 * s, y, (45, 48, 52))
            fill_ellipse(canvas, x + 1, y - 61 * s, 4 * s, 3 * s, (250, 245, 215))
        for x in (0.05 * width, 0.95 * width):
            y = horizon + 0.9 * ground_rows
            s = self.scale(y)
            fill_rect(canvas, x - 3 * s, y - 45 * s, x + 3 * s, y, (85, 60, 40))
            fill_ellipse(canvas, x, y - 55 * s, 22 * s, 18 * s, (40, 90, 40))
            fill_ellipse(canvas, x - 6 * s, y - 60 * s, 12 * s, 10 * s, (55, 110, 50), alpha=0.8)
        return np.clip(canvas, 0, 255)
