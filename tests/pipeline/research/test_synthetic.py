"""Synthetic feature sets: shapes, determinism, labels consistent with the written ground truth, scales."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.pipeline.features.featureset import open_feature_set
from lanp_vad.pipeline.research.synthetic import (
    DEFAULT_DATA_DIR,
    describe_lengths,
    iter_synthetic_videos,
    make_synthetic_features,
    write_synthetic_features,
)


def test_tiny_set_is_deterministic_and_well_formed() -> None:
    first = make_synthetic_features(scale="tiny", dim=16, salience=1.0, seed=3)
    again = make_synthetic_features(scale="tiny", dim=16, salience=1.0, seed=3)
    other = make_synthetic_features(scale="tiny", dim=16, salience=1.0, seed=4)
    assert len(first.features) == 40 and first.video_labels.sum() == 12
    for a, b in zip(first.features, again.features, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.features[0], other.features[0])
    for features, labels, label, frames in zip(
        first.features, first.snippet_labels, first.video_labels, first.num_frames, strict=True
    ):
        assert features.dtype == np.float32 and features.shape == (len(labels), 16) and (features >= 0).all()
        assert frames == 16 * len(labels)
        assert labels.any() == bool(label)


def test_anomalies_respect_margin_length_and_salience() -> None:
    videos = list(iter_synthetic_videos(scale="tiny", dim=32, salience=3.0, seed=1, anomaly_length=(0.2, 0.3),
                                        edge_margin=0.15))
    for video in videos:
        if not video.label:
            continue
        length = len(video.snippet_labels)
        abnormal = np.flatnonzero(video.snippet_labels)
        assert np.all(np.diff(abnormal) == 1)  # one segment
        assert abnormal[0] >= np.ceil(0.15 * length) - 1e-9 and abnormal[-1] < length - np.floor(0.15 * length) + 1
        assert 0.2 * length - 1 <= abnormal.size <= 0.3 * length + 1
        normal = video.features[video.snippet_labels == 0]
        inside = video.features[video.snippet_labels == 1]
        # the abnormal segment lies far from the video's normal snippets (salience 3)
        assert np.linalg.norm(inside.mean(0) - normal.mean(0)) > 2 * np.linalg.norm(normal[0] - normal[1])


def test_several_scenes_per_video_change_the_normal_content() -> None:
    one = next(iter_synthetic_videos(scale="tiny", dim=32, seed=2, scenes_per_video=1))
    two = next(iter_synthetic_videos(scale="tiny", dim=32, seed=2, scenes_per_video=3))
    jumps_one = np.linalg.norm(np.diff(one.features, axis=0), axis=1).max()
    jumps_two = np.linalg.norm(np.diff(two.features, axis=0), axis=1).max()
    assert jumps_two > 2 * jumps_one


def test_written_set_reads_back_with_matching_ground_truth(tmp_path: Path) -> None:
    synthetic = make_synthetic_features(scale="tiny", dim=8, seed=5)
    write_synthetic_features(tmp_path, scale="tiny", dim=8, seed=5)
    feature_set = open_feature_set(tmp_path)
    assert feature_set.video_ids == synthetic.video_ids
    np.testing.assert_array_equal(feature_set.load(synthetic.video_ids[0]), synthetic.features[0])
    with (tmp_path / "frames.csv").open() as stream:
        frames = {row["video_id"]: int(row["num_frames"]) for row in csv.DictReader(stream)}
    with (tmp_path / "gt.csv").open() as stream:
        intervals = list(csv.DictReader(stream))
    for video_id, labels, count in zip(synthetic.video_ids, synthetic.snippet_labels, synthetic.num_frames,
                                       strict=True):
        assert frames[video_id] == count
        rebuilt = np.zeros(count)
        for row in intervals:
            if row["video_id"] == video_id:
                rebuilt[int(row["start_frame"]) : int(row["end_frame"])] = 1
        np.testing.assert_array_equal(rebuilt, np.repeat(labels, 16))


def test_real_scales_use_the_split_frame_counts(shared_data: Path) -> None:
    sh = list(iter_synthetic_videos(scale="shanghaitech", dim=4, seed=0, data_dir=shared_data))
    assert len(sh) == 238 and sum(v.label for v in sh) == 63
    lengths = [len(v.snippet_labels) for v in sh]
    assert min(lengths) == 12 and max(lengths) == 260
    first_line = (shared_data / "ucf-crime/splits/Anomaly_Train.txt").read_text().split()[0]
    frames = int(first_line.split(",")[2])
    ucf = next(iter_synthetic_videos(scale="ucf-crime", dim=4, seed=0, data_dir=shared_data))
    assert len(ucf.snippet_labels) == -(-frames // 16)


def test_missing_split_falls_back_and_says_so(tmp_path: Path) -> None:
    fallback = make_synthetic_features(scale="shanghaitech", dim=2, seed=0, data_dir=tmp_path)
    assert "not found" in fallback.length_source and len(fallback.features) == 238
    assert fallback.video_labels.sum() == 63


def test_bad_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="anomaly_length"):
        next(iter_synthetic_videos(scale="tiny", dim=4, anomaly_length=(0.5, 0.2)))
    with pytest.raises(ValueError, match="edge_margin"):
        next(iter_synthetic_videos(scale="tiny", dim=4, edge_margin=0.6))


def test_default_data_dir_is_the_shared_data_beside_the_checkout(shared_data: Path) -> None:
    """Without ``data_dir`` the real split lengths are used (the layout move had pointed it inside the repo)."""
    assert DEFAULT_DATA_DIR.resolve() == shared_data.resolve()
    assert describe_lengths("shanghaitech").startswith("real frame counts")


def test_length_independent_sets_shuffle_the_lengths_among_the_videos(shared_data: Path) -> None:
    plain = list(iter_synthetic_videos(scale="shanghaitech", dim=2, seed=0, data_dir=shared_data))
    shuffled = list(iter_synthetic_videos(scale="shanghaitech", dim=2, seed=0, data_dir=shared_data,
                                          length_independent=True))  # fmt: skip
    lengths = [len(video.snippet_labels) for video in plain]
    moved = [len(video.snippet_labels) for video in shuffled]
    assert sorted(lengths) == sorted(moved) and lengths != moved
    assert [video.label for video in plain] == [video.label for video in shuffled]
