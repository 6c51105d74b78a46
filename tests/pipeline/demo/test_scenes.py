"""Synthetic surveillance clips: plans, frame counts, ground truth, determinism, and visible anomalies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import av
import numpy as np
import pytest

from lanp_vad.pipeline.demo.scenes import (
    ANOMALY_KINDS,
    CLIPS_FILE,
    ClipPlan,
    SceneSettings,
    plan_clips,
    render_clip,
    write_archive,
)


def test_plans_put_each_event_in_the_middle_of_its_clip() -> None:
    plans = plan_clips(12, num_frames=400, abnormal_fraction=0.5, seed=3)
    abnormal = [plan for plan in plans if plan.is_abnormal]
    assert len(abnormal) == 6
    assert [plan.anomaly for plan in abnormal] == list(ANOMALY_KINDS)
    for plan in abnormal:
        assert plan.anomaly_start is not None and plan.anomaly_end is not None
        assert 100 <= plan.anomaly_start < plan.anomaly_end <= 300  # outer quarters stay ordinary
        assert 0.2 * 400 - 1 <= plan.anomaly_end - plan.anomaly_start <= 0.35 * 400
        assert plan.frame_labels().sum() == plan.anomaly_end - plan.anomaly_start
    assert all(plan.frame_labels().sum() == 0 for plan in plans if not plan.is_abnormal)
    assert len({plan.video_id for plan in plans}) == 12


def test_plans_are_determined_by_the_seed() -> None:
    assert plan_clips(8, num_frames=320, seed=5) == plan_clips(8, num_frames=320, seed=5)
    assert plan_clips(8, num_frames=320, seed=5) != plan_clips(8, num_frames=320, seed=6)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_clips": 0, "num_frames": 320}, "num_clips"),
        ({"num_clips": 4, "num_frames": 10}, "at least 64 frames"),
        ({"num_clips": 4, "num_frames": 320, "abnormal_fraction": 1.5}, "abnormal_fraction"),
        ({"num_clips": 4, "num_frames": 320, "kinds": ("meteor",)}, "meteor"),
    ],
)
def test_bad_plans_are_refused_with_the_reason(arguments: dict, message: str) -> None:
    num_clips = arguments.pop("num_clips")
    with pytest.raises(ValueError, match=message):
        plan_clips(num_clips, **arguments)


def test_bad_scene_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="even"):
        SceneSettings(width=321)


def test_rendering_is_deterministic_in_both_seeds() -> None:
    plan = ClipPlan("a", 48, seed=11, anomaly="vehicle", anomaly_start=20, anomaly_end=30)
    first = np.stack(list(render_clip(plan, scene_seed=2)))
    again = np.stack(list(render_clip(plan, scene_seed=2)))
    other_people = np.stack(
        list(render_clip(ClipPlan("a", 48, seed=12, anomaly="vehicle", anomaly_start=20, anomaly_end=30), scene_seed=2))
    )
    other_camera = np.stack(list(render_clip(plan, scene_seed=3)))
    assert first.shape == (48, 240, 320, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_people)
    assert np.abs(first.astype(int) - other_camera).mean() > 5  # another camera view, not just noise


def _change_ratios(frames: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """How much more, in abnormal frames than in normal ones, the picture departs from the normal median
    (appearance) and from the previous frame (motion); both as shares of pixels changed by more than 30 levels."""
    frames = frames.astype(np.float32)
    median = np.median(frames[~labels][::3], axis=0)
    appearance = (np.abs(frames - median).max(axis=-1) > 30).mean(axis=(1, 2))
    motion = (np.abs(np.diff(frames, axis=0)).max(axis=-1) > 30).mean(axis=(1, 2))
    moving_labels = labels[1:]
    return (
        float(appearance[labels].mean() / appearance[~labels].mean()),
        float(motion[moving_labels].mean() / motion[~moving_labels].mean()),
    )


@pytest.mark.parametrize("kind", ANOMALY_KINDS)
def test_the_anomaly_frames_measurably_differ_from_normal_ones(kind: str) -> None:
    plan = ClipPlan("a", 120, seed=ANOMALY_KINDS.index(kind) + 20, anomaly=kind, anomaly_start=45, anomaly_end=80)
    frames = np.stack(list(render_clip(plan)))
    appearance, motion = _change_ratios(frames, plan.frame_labels().astype(bool))
    assert max(appearance, motion) > 1.3, (kind, appearance, motion)


def test_a_normal_clip_is_stationary() -> None:
    """Without an event, the middle of a clip changes about as much as its outer parts (no false ground truth)."""
    frames = np.stack(list(render_clip(ClipPlan("a", 120, seed=4))))
    middle = np.zeros(120, dtype=bool)
    middle[45:80] = True
    appearance, motion = _change_ratios(frames, middle)
    assert 0.5 < appearance < 1.5 and 0.5 < motion < 1.5


def test_the_archive_has_decodable_clips_and_matching_ground_truth(tmp_path: Path) -> None:
    settings = SceneSettings(width=160, height=120, fps=12)
    plans = plan_clips(3, num_frames=96, abnormal_fraction=0.34, seed=1)
    archive = write_archive(tmp_path, plans, settings)
    for plan in plans:
        with av.open(str(archive.paths[plan.video_id])) as container:
            stream = container.streams.video[0]
            frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
            assert float(stream.average_rate) == 12
        assert len(frames) == plan.num_frames
        assert frames[0].shape == (120, 160, 3)
    with archive.ground_truth_csv.open() as stream:
        rows = list(csv.DictReader(stream))
    expected = [(p.video_id, p.anomaly_start, p.anomaly_end) for p in plans if p.is_abnormal]
    assert [(r["video_id"], int(r["start_frame"]), int(r["end_frame"])) for r in rows] == expected
    assert len(rows) == 1
    with archive.frames_csv.open() as stream:
        assert {r["video_id"]: int(r["num_frames"]) for r in csv.DictReader(stream)} == {p.video_id: 96 for p in plans}
    described = json.loads((tmp_path / CLIPS_FILE).read_text())
    assert [clip["video_id"] for clip in described["clips"]] == [p.video_id for p in plans]
    assert archive.num_frames == 3 * 96


def test_clips_written_by_parallel_workers_are_those_of_a_sequential_run(tmp_path: Path) -> None:
    settings = SceneSettings(width=96, height=64, fps=10)
    plans = plan_clips(3, num_frames=64, abnormal_fraction=0.34, seed=2)
    sequential = write_archive(tmp_path / "one", plans, settings, workers=1)
    parallel = write_archive(tmp_path / "two", plans, settings, workers=2)
    for plan in plans:
        assert parallel.paths[plan.video_id] == tmp_path / "two" / f"{plan.video_id}.mp4"
        assert parallel.paths[plan.video_id].read_bytes() == sequential.paths[plan.video_id].read_bytes()
