"""The trainer on a real (synthetic) feature set: it learns, records what it did, and refuses what cannot train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lanp_vad.models.config import apply_overrides, preset
from lanp_vad.pipeline.evaluation.evaluator import Evaluator, frame_scores, metrics_from_frames, snippet_scores
from lanp_vad.pipeline.evaluation.groundtruth import load_ground_truth
from lanp_vad.pipeline.features.featureset import open_feature_set
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.research.datasets import store_arrays
from lanp_vad.pipeline.research.synthetic import write_synthetic_features
from lanp_vad.pipeline.training.model_dir import load_model, save_model
from lanp_vad.pipeline.training.trainer import (
    TrainingError,
    check_batching,
    choose_threshold,
    cut_pseudo_videos,
    train_lanp,
)
from tests.models.test_bank import _footage

# Small head and a larger step so the 40-video 'tiny' set trains in seconds (the official lr needs ~2,000 steps).
FAST = ["train.epochs=40", "train.batch_size=10", "train.lr=0.001", "classifier.hidden=32"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_features(tmp_path_factory.mktemp("tiny"), scale="tiny", dim=32, salience=6.0, seed=0)


def test_training_learns_without_labels(archive: Path, tmp_path: Path) -> None:
    features = open_feature_set(archive)
    ground_truth = load_ground_truth(archive / "gt.csv", frames=archive / "frames.csv")
    evaluator = Evaluator(features, ground_truth)  # the unsupervised setting: score the archive trained on
    config = apply_overrides(preset("reference"), FAST)
    result = train_lanp(features, config, ground_truth=ground_truth, progress=False, eval_fn=evaluator)

    assert len(result.history) == 40 and result.history[-1]["step"] == 40 * 4
    assert result.history[-1]["auc_roc"] > 0.9 > result.history[0]["auc_roc"]
    metadata = result.metadata
    assert metadata["metrics"]["final_epoch"]["auc_roc"] == result.history[-1]["auc_roc"]
    assert metadata["metrics"]["best_epoch"]["auc_roc"] == max(record["auc_roc"] for record in result.history)
    assert "test-set selection" in metadata["metrics"]["best_epoch"]["selection"]
    assert metadata["training_data"]["num_videos"] == 40
    quality = metadata["pseudo_labels"]["vs_ground_truth"]
    assert quality["video"]["recall"] > 0.9 and quality["snippet"]["recall"] > 0.9
    assert 0 < metadata["threshold"] < 1

    # Round trip through the model directory: identical scores.
    save_model(tmp_path / "model", result.model, features.spec, config, metadata)
    loaded = load_model(tmp_path / "model")
    before, after = snippet_scores(result.model, features), snippet_scores(loaded.classifier, features)
    assert all(np.array_equal(before[video], after[video]) for video in before)
    assert loaded.metadata["threshold"] == metadata["threshold"]


def test_same_seed_same_model(archive: Path) -> None:
    features = open_feature_set(archive)
    config = apply_overrides(preset("reference"), [*FAST, "train.epochs=2"])
    first, second = (train_lanp(features, config, progress=False).model for _ in range(2))
    pairs = zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    other = train_lanp(features, apply_overrides(config, ["train.seed=7"]), progress=False).model
    assert not torch.equal(first.output.weight, other.output.weight)


def test_drop_last_with_too_few_videos_is_refused_with_a_way_out() -> None:
    config = preset("reference")  # batch 30 with drop_last, as the official code
    with pytest.raises(TrainingError, match=r"28 videos.*train.drop_last=false.*batch_size=28"):
        check_batching(28, config)  # UCSD Ped2 has 28 videos
    check_batching(28, apply_overrides(config, ["train.drop_last=false"]))


def test_threshold_lies_between_pseudo_normal_and_pseudo_abnormal_scores() -> None:
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.uniform(0.0, 0.2, 500), rng.uniform(0.3, 0.5, 100)])
    targets = np.concatenate([np.zeros(500), np.ones(100)])
    threshold = choose_threshold(scores, targets)
    assert np.median(scores[:500]) < threshold < np.median(scores[500:])
    assert choose_threshold(scores, np.zeros(600)) == 0.5  # no pseudo-abnormal snippets: the neutral default


def test_reference_refuses_a_too_short_video_and_default_skips_it(archive: Path, tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    for path in sorted(archive.glob("*.npy"))[:8]:
        (folder / path.name).write_bytes(path.read_bytes())
    np.save(folder / "blip.npy", np.ones((2, 32), dtype=np.float32))
    features = open_feature_set(folder)
    with pytest.raises(TrainingError, match=r"blip.*train.skip_short=true"):
        train_lanp(features, apply_overrides(preset("reference"), [*FAST, "train.drop_last=false"]), progress=False)
    result = train_lanp(features, apply_overrides(preset("default"), [*FAST, "train.epochs=2"]), progress=False)
    assert result.metadata["training_data"]["skipped_short"] == ["blip"]
    assert result.metadata["training_data"]["num_videos"] == 8


def test_one_video_is_refused_even_by_the_default() -> None:
    with pytest.raises(TrainingError, match="at least 2"):
        check_batching(1, preset("default"))


def test_long_videos_are_cut_into_pseudo_videos(archive: Path) -> None:
    pieces, owners = cut_pseudo_videos([np.zeros((100, 2)), np.zeros((20, 2)), np.zeros((35, 2))], 20)
    assert [len(piece) for piece in pieces] == [20] * 5 + [20] + [18, 17]
    assert owners.tolist() == [0] * 5 + [1] + [2, 2]
    features = open_feature_set(archive)
    config = apply_overrides(preset("default"), [*FAST, "train.epochs=2", "train.pseudo_video_snippets=20"])
    ground_truth = load_ground_truth(archive / "gt.csv", frames=archive / "frames.csv")
    result = train_lanp(features, config, ground_truth=ground_truth, progress=False)
    data = result.metadata["training_data"]
    assert data["num_videos"] == 40 and data["num_pseudo_videos"] > 40
    assert 0 <= result.metadata["pseudo_labels"]["vs_ground_truth"]["video"]["recall"] <= 1


def test_default_gives_the_head_the_video_context_only_where_videos_differ_most(archive: Path, tmp_path: Path) -> None:
    config = apply_overrides(preset("default"), [*FAST, "train.epochs=2"])
    features = open_feature_set(archive)  # the synthetic videos differ mostly by a per-video offset
    result = train_lanp(features, config, progress=False)
    record = result.metadata["classifier_context"]
    assert record["requested"] == "auto" and record["used"] == "trailing_mean" and record["between_video_share"] > 0.9
    assert result.model.config.context == "trailing_mean" and result.model.temporal.in_channels == 64

    save_model(tmp_path / "model", result.model, features.spec, config, result.metadata)  # config still says auto
    loaded = load_model(tmp_path / "model")
    assert loaded.config.classifier.context == "trailing_mean"
    before, after = snippet_scores(result.model, features), snippet_scores(loaded.classifier, features)
    assert all(np.array_equal(before[video], after[video]) for video in before)

    one_scene = tmp_path / "one-scene"  # the same videos without their offsets
    one_scene.mkdir()
    for path in sorted(archive.glob("*.npy")):
        video = np.load(path)
        np.save(one_scene / path.name, video - video.mean(axis=0))
    plain = train_lanp(open_feature_set(one_scene), config, progress=False)
    record = plain.metadata["classifier_context"]
    assert record["used"] == "none" and record["between_video_share"] < 0.01
    assert plain.model.temporal.in_channels == 32


def test_the_default_joins_the_classifier_the_bank_and_the_own_propagation(archive: Path, tmp_path: Path) -> None:
    """The default model scores with calibrated evidence: threshold 0.5, graded scores, the same after a round trip
    through the model directory, and a stream calibration without the video's own propagation."""
    features = open_feature_set(archive)
    ground_truth = load_ground_truth(archive / "gt.csv", frames=archive / "frames.csv")
    config = apply_overrides(preset("default"), FAST)
    result = train_lanp(features, config, ground_truth=ground_truth, progress=False)
    detector = result.detector
    assert detector.calibration.components == ("classifier", "bank", "within")
    assert detector.stream.components == ("classifier", "bank")
    assert result.metadata["threshold"] == 0.5 and result.metadata["archive"]["mode"] == "mixed"
    evaluator = Evaluator(features, ground_truth)
    scores = evaluator.snippet_scores(detector)
    assert metrics_from_frames(frame_scores(scores), evaluator.labels)["auc_roc"] > 0.9
    flat = np.concatenate(list(scores.values()))
    assert np.mean((flat < 0.05) | (flat > 0.95)) < 0.5  # graded, not a 0/1 step
    result.save(tmp_path / "model", features.spec, config)
    loaded = load_model(tmp_path / "model")
    again = snippet_scores(loaded.torch_detector(), features)
    assert all(np.allclose(scores[video], again[video]) for video in scores)


def test_an_archive_without_anomalies_gets_a_bank_model_and_says_why(tmp_path: Path) -> None:
    features = store_arrays(tmp_path / "week", FeatureSpec.external(16), {
        f"day{index:02d}": video for index, video in enumerate(_footage(30, seed=0))
    })  # fmt: skip
    for requested in ("auto", "normal_only"):
        config = apply_overrides(preset("default"), [*FAST, f"bank.archive={requested}"])
        result = train_lanp(features, config, progress=False)
        archive_record = result.metadata["archive"]
        assert archive_record["mode"] == "normal_only", archive_record
        assert ("holds no anomaly" in archive_record["reason"]) == (requested == "auto"), archive_record
        assert result.model is None and result.detector.calibration.components == ("bank",)
    result.save(tmp_path / "model", features.spec, config)
    loaded = load_model(tmp_path / "model")
    assert loaded.classifier is None and not (tmp_path / "model" / "model.safetensors").exists()
    scores = snippet_scores(loaded.torch_detector(), features)
    assert np.mean(np.concatenate(list(scores.values())) > 0.5) < 0.05  # its own normal footage: few alarms
    mixed = store_arrays(tmp_path / "mixed", FeatureSpec.external(16), {
        f"day{index:02d}": video for index, video in enumerate(_footage(30, abnormal=(3, 11, 19), seed=0))
    })  # fmt: skip
    result = train_lanp(mixed, apply_overrides(preset("default"), FAST), progress=False)
    assert result.metadata["archive"]["mode"] == "mixed" and result.model is not None
