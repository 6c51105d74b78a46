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
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

import av
import numpy as np

from lanp_vad.pipeline.demo.movers import event_movers, walkers
from lanp_vad.pipeline.demo.painting import VIEW_MARGIN, Scene
from lanp_vad.pipeline.demo.plans import ANOMALY_KINDS, AnomalyKind, ClipPlan, SceneSettings, plan_clips

__all__ = [
    "ANOMALY_KINDS", "CLIPS_FILE", "FRAMES_FILE", "GROUND_TRUTH_FILE", "AnomalyKind", "ClipPlan", "SceneSettings",
    "SyntheticArchive", "plan_clips", "render_clip", "write_archive", "write_clip", "write_ground_truth",
]

GROUND_TRUTH_FILE = "ground_truth.csv"
FRAMES_FILE = "frames.csv"
CLIPS_FILE = "clips.json"


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



def render_clip(
    plan: ClipPlan, settings: SceneSettings = SceneSettings(), *, scene_seed: int = 0
) -> Iterator[np.ndarray]:
    """Frames of one clip, uint8 (height, width, 3) RGB, deterministic in ``scene_seed`` (the camera) and the
    plan's seed (the people and the event)."""
    scene = Scene(settings, np.random.default_rng(scene_seed))
    rng = np.random.default_rng(plan.seed)
    movers = walkers(scene, plan.num_frames, settings.walkers, rng)
    if plan.anomaly is not None:
        movers += event_movers(plan, scene, rng)
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
        offsets[plan.anomaly_start : plan.anomaly_end] = np.clip(shake, 1 - VIEW_MARGIN, VIEW_MARGIN - 1)
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
            dy, dx = np.round(previous + share * (current - previous)).astype(int) + VIEW_MARGIN
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
        # The file must be a function of the plan alone (tests compare parallel and sequential runs byte for byte):
        # x264's macroblock-tree rate control gave different bytes for the same frames from run to run, and its
        # output depends on the thread count, which "auto" takes from whichever process encodes. Clips are
        # encoded in parallel by processes instead.
        stream.options = {"crf": str(settings.crf), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        stream.codec_context.thread_count = 1
        for index, image in enumerate(render_clip(plan, settings, scene_seed=scene_seed)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1) / Fraction(settings.fps)
            container.mux(stream.encode(frame))
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
    root: str | Path,
    plans: Sequence[ClipPlan],
    settings: SceneSettings = SceneSettings(),
    *,
    scene_seed: int = 0,
    workers: int | None = None,
) -> SyntheticArchive:
    """Write every planned clip as ``<root>/<video_id>.mp4`` plus ``ground_truth.csv``, ``frames.csv`` and
    ``clips.json`` (the plans and the scene settings) beside them.

    Clips are rendered and encoded by ``workers`` processes (default: one per core this process may use): each
    clip depends only on its plan and the scene seed, so the files are byte for byte those of a sequential run."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    targets = [root / f"{plan.video_id}.mp4" for plan in plans]
    workers = min(workers or len(os.sched_getaffinity(0)), len(plans))
    write = partial(write_clip, settings=settings, scene_seed=scene_seed)
    if workers > 1:
        # spawned, not forked: the caller may hold torch's threads, which a fork would copy in a locked state
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            written = list(pool.map(write, targets, plans))
    else:
        written = list(map(write, targets, plans))
    paths = {plan.video_id: path for plan, path in zip(plans, written, strict=True)}
    write_ground_truth(plans, root / GROUND_TRUTH_FILE, root / FRAMES_FILE)
    description = {"scene_seed": scene_seed, "settings": asdict(settings), "clips": [asdict(p) for p in plans]}
    (root / CLIPS_FILE).write_text(json.dumps(description, indent=2))
    return SyntheticArchive(root, list(plans), paths, root / GROUND_TRUTH_FILE, root / FRAMES_FILE, settings)
