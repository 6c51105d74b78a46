"""Feature-set layouts, validation errors that name the video, and the atomic feature store."""

import json

import numpy as np
import pytest

from lanp_vad.pipeline.features.featureset import FeatureSetError, FeatureStore, check_spec_match, open_feature_set
from lanp_vad.pipeline.features.spec import FeatureSpec, SpecMismatchError


def _write(folder, name, array):
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / name, array)


def test_folder_layout_reads_each_video_in_order(tmp_path):
    _write(tmp_path, "b.npy", np.ones((5, 8), np.float32))
    _write(tmp_path, "a_i3d.npy", np.zeros((3, 10, 8), np.float32))
    features = open_feature_set(tmp_path)
    assert features.video_ids == ["a", "b"]
    assert features.load("a").shape == (3, 10, 8)
    assert features.spec.dim == 8 and features.spec.weights == "external"


def test_empty_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FeatureSetError, match="no feature files"):
        open_feature_set(tmp_path)


def test_mixed_dimensions_name_the_video(tmp_path):
    _write(tmp_path, "a.npy", np.ones((5, 8), np.float32))
    _write(tmp_path, "b.npy", np.ones((5, 9), np.float32))
    with pytest.raises(FeatureSetError, match="^b: .*mixed feature dimensions"):
        open_feature_set(tmp_path).load_all()


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features_name_the_video_and_snippet(tmp_path, bad):
    array = np.ones((6, 4), np.float32)
    array[4, 2] = bad
    _write(tmp_path, "clip7.npy", array)
    with pytest.raises(FeatureSetError, match=r"^clip7: NaN or inf in snippets \[4\]"):
        open_feature_set(tmp_path).load("clip7")


def test_rtfm_list_resolves_foreign_paths_by_file_name(tmp_path, shared_data):
    sample = shared_data / "shanghaitech" / "i3d-10crop-sample" / "train"
    listing = tmp_path / "train.list"
    listing.write_text("/home/someone/SH/01_002_i3d.npy\nG:\\SH\\01_003_i3d.npy\n")
    features = open_feature_set(listing, feature_dir=sample)
    assert features.video_ids == ["01_002", "01_003"]
    assert features.load("01_002").shape[1:] == (10, 2048)
    assert features.spec.crops == 10


def test_lanp_split_layout_carries_labels_and_frame_counts(tmp_path, shared_data):
    sample = shared_data / "shanghaitech" / "i3d-10crop-sample" / "train"
    split = tmp_path / "split.txt"
    split.write_text("01_002,0,481\n01_003,0,481\n")
    features = open_feature_set(split, feature_dir=sample, suffix="_i3d.npy")
    assert [(e.video_id, e.label, e.num_frames) for e in features] == [("01_002", 0, 481), ("01_003", 0, 481)]
    with pytest.raises(FeatureSetError, match="needs --feature-dir"):
        open_feature_set(split)


def test_store_is_resumable_and_records_failures(tmp_path):
    spec = FeatureSpec(backbone="toy", weights="random-init:0", dim=4)
    store = FeatureStore(tmp_path, spec)
    store.write("v1", np.ones((3, 4), np.float32), num_frames=48)
    store.fail("v2", "corrupt: moov atom not found")
    reopened = FeatureStore(tmp_path, spec)
    assert reopened.is_done("v1") and not reopened.is_done("v2")
    assert reopened.status("v2") == "failed"
    features = open_feature_set(tmp_path)
    assert features.video_ids == ["v1"] and features.spec == spec
    assert features.entry("v1").num_frames == 48
    lines = [json.loads(line) for line in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert [line["status"] for line in lines] == ["ok", "failed"]
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_store_refuses_features_of_another_spec(tmp_path):
    FeatureStore(tmp_path, FeatureSpec(backbone="toy", weights="random-init:0", dim=4))
    with pytest.raises(SpecMismatchError, match="weights"):
        FeatureStore(tmp_path, FeatureSpec(backbone="toy", weights="random-init:1", dim=4))


def test_store_refuses_invalid_features_without_writing(tmp_path):
    store = FeatureStore(tmp_path, FeatureSpec(backbone="toy", weights="random-init:0", dim=4))
    with pytest.raises(FeatureSetError, match="^bad: NaN"):
        store.write("bad", np.full((2, 4), np.nan, np.float32))
    assert not (tmp_path / "bad.npy").exists() and store.status("bad") is None


def test_model_and_features_of_different_dimension_are_refused(tmp_path):
    _write(tmp_path, "a.npy", np.ones((5, 8), np.float32))
    model_spec = FeatureSpec(backbone="toy", weights="random-init:0", dim=16)
    with pytest.raises(SpecMismatchError, match="16-d"):
        check_spec_match(model_spec, open_feature_set(tmp_path))
