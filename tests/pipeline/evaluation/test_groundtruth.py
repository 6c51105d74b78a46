"""Ground truth: the field's published label arrays rebuilt bit for bit, and mismatches refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lanp_vad.pipeline.evaluation.groundtruth import (
    GroundTruthError,
    detect_format,
    load_ground_truth,
    read_frame_counts,
)


def _split(path: Path) -> list[tuple[str, int]]:
    """(name, num_frames) of a LANP ``name,label,num_frames`` split, in file order."""
    rows = [line.split(",") for line in path.read_text().splitlines() if line.strip()]
    return [(name, int(frames)) for name, _, frames in rows]


def _list_order(path: Path) -> list[str]:
    """Video ids of an RTFM feature list, in list order."""
    names = [line.strip().replace("\\", "/").rsplit("/", 1)[-1] for line in path.read_text().splitlines()]
    return [name.removesuffix("_i3d.npy") for name in names if name]


def test_shanghaitech_masks_rebuild_gt_sh2(shared_data: Path) -> None:
    sh = shared_data / "shanghaitech"
    frames = dict(_split(sh / "splits" / "test_split.txt"))
    order = _list_order(sh / "splits" / "shanghai-i3d-test-10crop.list")
    ground_truth = load_ground_truth(sh / "test_frame_mask")
    snippets = [frames[video] // 16 + 1 for video in order]
    rebuilt = ground_truth.labels_for(order, snippets)
    expected = np.load(sh / "gt" / "gt-sh2.npy")
    assert rebuilt.shape == expected.shape
    assert np.array_equal(rebuilt, expected)


def test_ucf_rtfm_order_rebuilt_from_mat_files(shared_data: Path) -> None:
    ucf = shared_data / "ucf-crime"
    order = _list_order(ucf / "splits" / "ucf-i3d-test.list")
    ground_truth = load_ground_truth(
        ucf / "annotations" / "Matlab_formate", fmt="ucf-rtfm", frames=ucf / "splits" / "Anomaly_Test.txt"
    )
    frames = ground_truth.frame_counts
    rebuilt = ground_truth.labels_for(order, [-(-frames[video] // 16) for video in order])
    expected = np.load(ucf / "gt" / "gt-ucf-rtfm-order-uint8.npy")
    assert rebuilt.dtype == np.uint8 and rebuilt.shape == expected.shape
    assert np.array_equal(rebuilt, expected)


def test_ucf_lanp_order_rebuilt_from_annotation_txt(shared_data: Path) -> None:
    ucf = shared_data / "ucf-crime"
    split = _split(ucf / "splits" / "Anomaly_Test.txt")  # the LANP test order
    ground_truth = load_ground_truth(ucf / "annotations" / "Temporal_Anomaly_Annotation_New.txt")
    rebuilt = ground_truth.labels_for([name for name, _ in split], [-(-frames // 16) for _, frames in split])
    expected = np.load(ucf / "gt" / "gt-ucf-lanp-order-uint8.npy")
    assert np.array_equal(rebuilt, expected)


def test_ped2_mat_matches_frame_labels(shared_data: Path) -> None:
    ped2 = shared_data / "ucsd-ped2"
    ground_truth = load_ground_truth(ped2 / "ped2.mat")
    expected = np.load(ped2 / "gt-ped2-frames.npy")
    # Ped2 test clips hold 180/180/150/180/150/180/180/180/120/150/180/180 frames; use counts that tile the
    # reference exactly (T = n / 16 rounded up, labels truncated back to n frames).
    counts = [180, 180, 150, 180, 150, 180, 180, 180, 120, 150, 180, 180]
    assert sum(counts) == len(expected)
    pieces = [
        ground_truth.frame_labels_for(f"Test{index:03d}", -(-frames // 16), num_frames=frames)[:frames]
        for index, frames in enumerate(counts, start=1)
    ]
    assert np.array_equal(np.concatenate(pieces), expected.astype(np.uint8))


def test_mask_is_padded_with_last_label_and_truncated(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.array([0] * 30 + [1] * 3, dtype=np.uint8))
    ground_truth = load_ground_truth(tmp_path)
    padded = ground_truth.frame_labels_for("a", 3)
    assert padded.shape == (48,) and padded[30:].all() and not padded[:30].any()
    assert ground_truth.frame_labels_for("a", 2).shape == (32,)
    assert not ground_truth.frame_labels_for("unlisted", 4).any()  # no mask: a normal video


def test_csv_with_frame_counts_and_feature_length(tmp_path: Path) -> None:
    (tmp_path / "gt.csv").write_text("video_id,start_frame,end_frame\nv1,10,20\nv1,40,41\nv2,-1,-1\n")
    (tmp_path / "frames.csv").write_text("video_id,num_frames\nv1,50\nv2,64\n")
    ground_truth = load_ground_truth(tmp_path / "gt.csv", frames=tmp_path / "frames.csv")
    labels = ground_truth.frame_labels_for("v1", 4)
    assert labels.shape == (64,)
    assert labels[10:20].all() and labels[40] and labels.sum() == 11  # frames 50..63 padded with label of frame 49
    assert ground_truth.video_label("v1") == 1 and ground_truth.video_label("v2") == 0
    assert read_frame_counts(tmp_path / "frames.csv") == {"v1": 50, "v2": 64}


def test_length_mismatch_names_the_video(tmp_path: Path) -> None:
    np.save(tmp_path / "cam_07.npy", np.zeros(100, dtype=np.uint8))
    ground_truth = load_ground_truth(tmp_path)
    with pytest.raises(GroundTruthError, match="cam_07.*100 frames.*40 snippets"):
        ground_truth.frame_labels_for("cam_07", 40)


def test_interval_beyond_video_names_the_video(tmp_path: Path) -> None:
    (tmp_path / "gt.csv").write_text("clip_9,500,600\n")
    ground_truth = load_ground_truth(tmp_path / "gt.csv")
    with pytest.raises(GroundTruthError, match="clip_9.*beyond"):
        ground_truth.frame_labels_for("clip_9", 10)


def test_missing_video_names_the_video(shared_data: Path) -> None:
    ground_truth = load_ground_truth(shared_data / "ucf-crime/annotations/Temporal_Anomaly_Annotation_New.txt")
    with pytest.raises(GroundTruthError, match="Shoplifting999_x264.*no ground truth"):
        ground_truth.frame_labels_for("Shoplifting999_x264", 10)


def test_bad_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.txt").write_text("Abuse001_x264.mp4 Abuse 10\n")
    with pytest.raises(GroundTruthError, match="bad.txt:1"):
        load_ground_truth(tmp_path / "bad.txt")
    (tmp_path / "reversed.csv").write_text("v,30,10\n")
    with pytest.raises(GroundTruthError, match="v: invalid abnormal interval"):
        load_ground_truth(tmp_path / "reversed.csv")
    with pytest.raises(GroundTruthError, match="does not exist"):
        load_ground_truth(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(GroundTruthError, match="neither"):
        detect_format(tmp_path / "empty")
