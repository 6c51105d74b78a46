"""Event metrics on hand-made intervals with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanp_vad.models.errors import UserError
from lanp_vad.pipeline.evaluation.events import (
    EventVideo,
    event_counts,
    label_intervals,
    match_events,
    suggest_threshold,
    sweep,
)


def _labels(length: int, *intervals: tuple[int, int]) -> np.ndarray:
    labels = np.zeros(length, dtype=np.uint8)
    for start, end in intervals:
        labels[start:end] = 1
    return labels


def test_label_intervals() -> None:
    assert label_intervals(_labels(20, (0, 3), (10, 12), (19, 20))) == [(0, 3), (10, 12), (19, 20)]
    assert label_intervals(np.zeros(5)) == []


def test_half_coverage_both_ways() -> None:
    truth = [(10, 20), (40, 60)]
    # half of the first event covered -> detected; a tenth of the second -> missed
    assert match_events([(15, 20), (40, 42)], truth, 100) == (1, 2)
    # one event over the whole video covers both true events but is mostly normal: found, yet a false alarm
    assert match_events([(0, 100)], truth, 100) == (2, 0)
    # split in two by a short dip: still found, both parts correct
    assert match_events([(40, 49), (51, 60)], truth, 100) == (1, 2)
    assert match_events([], truth, 100) == (0, 0)
    assert match_events([(15, 20)], truth, 100, min_overlap=0.6) == (0, 1)
    with pytest.raises(UserError):
        match_events([], truth, 100, min_overlap=0.0)


def _threshold_segmenter(scores: np.ndarray, fps: float, threshold: float) -> list[tuple[int, int]]:
    return label_intervals(scores > threshold)


def test_counts_rates_and_false_alarms_per_hour() -> None:
    fps = 10.0
    scores = np.zeros(36_000)  # one hour at 10 fps
    scores[100:200] = 0.9      # the true event, found
    scores[5_000:5_050] = 0.7  # a false alarm above 0.6 only
    scores[9_000:9_010] = 0.4  # a false alarm above 0.3 only
    video = EventVideo("a", scores, _labels(36_000, (100, 200), (20_000, 20_100)), fps)
    counts = event_counts([video], 0.5, _threshold_segmenter).to_dict()
    assert counts["true_events"] == 2 and counts["detected"] == 1 and counts["event_recall"] == 0.5
    assert counts["predicted_events"] == 2 and counts["correct"] == 1 and counts["event_precision"] == 0.5
    assert counts["false_alarms"] == 1 and counts["false_alarms_per_hour"] == pytest.approx(1.0)
    points = sweep([video], _threshold_segmenter, thresholds=[0.3, 0.6, 0.8, 0.95])
    assert [p.false_alarms for p in points] == [2, 1, 0, 0] and [p.detected for p in points] == [1, 1, 1, 0]
    assert suggest_threshold(points, 0.5).threshold == 0.8  # the quiet threshold that still finds the event
    assert suggest_threshold(points, 5.0).threshold == 0.8  # ties in recall go to the higher threshold
    assert suggest_threshold(points[:1], 0.5) is None
    with pytest.raises(UserError, match="frame labels"):
        event_counts([EventVideo("b", scores, np.zeros(3), fps)], 0.5, _threshold_segmenter)


def test_lanp_evaluate_reports_events_and_a_sweep(tmp_path: Path, capsys) -> None:
    """The CLI over a trained-on-synthetic-features model: events at the model's threshold, the sweep and its
    suggestion; without frame rates the events are skipped with the reason (and --sweep is refused)."""
    import json

    from lanp_vad.cli import main
    from lanp_vad.pipeline.research.synthetic import write_synthetic_features

    archive = write_synthetic_features(tmp_path / "features", scale="tiny", dim=24, salience=6.0, seed=3)
    assert main(["train", "--features", str(archive), "--out", str(tmp_path / "model"), "--no-progress",
                 "--set", "train.epochs=20", "--set", "train.batch_size=10", "--set", "classifier.hidden=32"]) == 0
    capsys.readouterr()
    common = ["evaluate", "--model", str(tmp_path / "model"), "--features", str(archive), "--gt",
              str(archive / "gt.csv"), "--frames", str(archive / "frames.csv"), "--json"]
    assert main([*common, "--fps", "25", "--sweep", "--target-false-alarms", "30"]) == 0
    report = json.loads(capsys.readouterr().out)
    events = report["events"]
    assert events["at_threshold"]["true_events"] > 0 and len(events["sweep"]) == 51
    assert 0 <= events["at_threshold"]["event_recall"] <= 1
    suggestion = events["suggestion"]
    assert suggestion["target_false_alarms_per_hour"] == 30
    if suggestion["threshold"] is not None:
        assert suggestion["false_alarms_per_hour"] <= 30
    assert main(common) == 0
    assert "no frame rates" in json.loads(capsys.readouterr().out)["events"]["skipped"]
    assert main([*common, "--sweep"]) == 2
    assert "--fps" in capsys.readouterr().err
