"""The accuracy table generator end to end on the tiny configuration, and its evaluation slicing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.models.baselines import C2FPLConfig
from lanp_vad.models.config import ConfigError
from lanp_vad.pipeline.evaluation.groundtruth import GroundTruth, VideoAnnotation
from lanp_vad.pipeline.features.featureset import FeatureStore, open_feature_set
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.research.accuracy import markdown_tables, method_rows, run_table, summarize
from lanp_vad.pipeline.research.baselines import peer_config
from lanp_vad.pipeline.research.datasets import AccuracyDataset, Region, SyntheticSpec, event_metrics, synthetic_dataset
from lanp_vad.pipeline.research.ped2 import synthetic_clip_datasets

pytestmark = pytest.mark.usefixtures("one_thread")


def test_table_runs_end_to_end_on_the_tiny_configuration(tmp_path: Path) -> None:
    """What CI runs: the core rows (default, reference, the naive contrast, the peers) on the tiny set and on its
    long-video construction, which fills two columns (whole videos and the test part)."""
    tiny = synthetic_dataset(SyntheticSpec("tiny", 2.0, dim=16), tmp_path)
    (long,) = synthetic_clip_datasets(tiny, tmp_path / "derived", ("long",))
    assert long.columns == ["syn-tiny s=2-long", "syn-tiny s=2-long test part"]
    rows = method_rows(include="core")
    assert {"naive seed contrast (no training)", "LANP default"} <= {row.name for row in rows}
    records = []
    report = run_table([tiny, long], rows, seeds=(0,), epochs=3, eval_every=2, on_record=records.append)

    columns = [tiny.name, *long.columns]
    assert [(record["dataset"], record["method"]) for record in records] == [
        (column, row.name) for dataset in (tiny, long) for row in rows for column in dataset.columns
    ]
    assert set(report.summary) == {row.name for row in rows} and list(report.datasets) == columns
    for record in records:
        assert "error" not in record, record
        assert 0 <= record["final"]["auc_roc"] <= 1 and 0 <= record["final"]["ap"] <= 1
        assert record["best"]["auc_roc"] >= record["final"]["auc_roc"]
        has_pseudo_labels = record["kind"] in ("lanp", "c2fpl", "gcl")
        assert (record["pseudo_labels"] is not None) == has_pseudo_labels, record["method"]
    authors = next(record for record in records if record["method"] == "C2FPL (authors' code)")
    assert {"video_share", "video_precision", "video_recall"} <= set(authors["pseudo_labels"])
    lanp = next(record for record in records if record["kind"] == "lanp")
    assert lanp["final"]["epoch"] == 3 and lanp["best"]["epoch"] in (2, 3)  # evaluated every 2nd and the last
    contexts = {record["method"]: record["classifier_context"] for record in records if record["kind"] == "lanp"}
    assert contexts["LANP default"]["requested"] == "auto"  # decided on the data, recorded
    assert contexts["LANP default"]["archive"]["mode"] in ("mixed", "normal_only")  # and the archive's mode
    reference = contexts["LANP reference code (rms, UCF)"]
    assert (reference["requested"], reference["used"], reference["archive"]["mode"]) == ("none", "none", "mixed")
    whole, part = (next(r for r in records if r["dataset"] == c and r["kind"] == "seed_contrast") for c in columns[1:])
    assert whole["final"]["auc_roc"] != part["final"]["auc_roc"]  # two regions, measured separately

    markdown = report.markdown()
    assert "best epoch (%) — chosen on the test set" in markdown
    assert all(f"| {row.name} |" in markdown for row in rows)
    restored = json.loads(report.to_json())
    assert restored["summary"]["random scorer"][tiny.name]["seeds"] == 1
    assert restored["settings"]["lanp_epochs"] == 3


def test_peer_overrides_set_the_peers_config_and_bad_ones_are_named() -> None:
    assert peer_config("c2fpl", ["variant=authors", "epochs=3"]) == C2FPLConfig(variant="authors", epochs=3)
    assert peer_config("gcl", ["standardize=false", "batching=consecutive"]).batching == "consecutive"
    with pytest.raises(ConfigError, match="not of the form key=value"):
        peer_config("gcl", ["standardize"])
    with pytest.raises(ConfigError, match="variant"):
        peer_config("c2fpl", ["variant=theirs"])
    with pytest.raises(ConfigError, match="no_such_switch"):
        peer_config("gcl", ["no_such_switch=1"])


def test_summary_reports_mean_and_std_over_seeds() -> None:
    records = [
        {"method": "m", "dataset": "d", "final": {"auc_roc": auc, "ap": 0.5}, "best": {"auc_roc": auc, "ap": 0.5},
         "pseudo_labels": None}
        for auc in (0.6, 0.8)
    ]  # fmt: skip
    records.append({"method": "m", "dataset": "d", "seed": 2, "error": "no confident normal video"})
    records.append({"method": "h", "dataset": "d", "seed": 0, "error": "no confident normal video"})
    summary = summarize(records)
    cell = summary["m"]["d"]
    assert cell["seeds"] == 2  # the failed seed is left out of the mean, not counted as a number
    assert cell["auc_final"]["mean"] == pytest.approx(0.7) and cell["auc_final"]["std"] == pytest.approx(0.1)
    assert "pl_precision" not in cell
    assert summary["h"]["d"] == {"seeds": 0, "error": "no confident normal video"}
    assert "| h | failed (see JSON) |" in markdown_tables(summary, ["d"])


def test_sliced_evaluation_judges_only_the_test_part(tmp_path: Path) -> None:
    """Ped2-long's rule: a long video is scored on its middle part against the clip's own ground truth."""
    store = FeatureStore(tmp_path / "long", FeatureSpec.external(4))
    store.write("long_01", np.ones((10, 4), dtype=np.float32))
    store.write("long_02", np.ones((8, 4), dtype=np.float32))
    features = open_feature_set(tmp_path / "long")
    clip_truth = GroundTruth(
        {"long_01": VideoAnnotation(intervals=((16, 48),)), "long_02": VideoAnnotation()}, "pad_last"
    )
    whole_truth = GroundTruth(
        {"long_01": VideoAnnotation(intervals=((64, 96),)), "long_02": VideoAnnotation(intervals=((0, 16),))},
        "pad_last",
    )
    part = Region("test part", clip_truth, {"long_01": (3, 7), "long_02": (2, 5)})
    dataset = AccuracyDataset("long", features, features, whole_truth, "test", regions=(part,))
    # Inside the slices the scores match the truth exactly; outside they are adversarial and must be ignored.
    scores = {
        "long_01": np.array([9, 9, 9, 0, 1, 1, 0, 9, 9, 9], dtype=float),
        "long_02": np.array([9, 9, 0, 0, 0, 9, 9, 9], dtype=float),
    }
    metrics = dataset.measure(scores)
    assert metrics["test part:auc_roc"] == 1.0
    assert metrics["test part:frames"] == 16 * (4 + 3) and metrics["test part:abnormal_frames"] == 32
    assert metrics["frames"] == 16 * 18 and metrics["auc_roc"] < 1.0  # the whole videos: the adversarial parts count


def test_event_metrics_of_real_footage_columns_count_events_as_lanp_evaluate_does() -> None:
    """One true event in frames [16, 32) of a 64-frame video at 10 fps: a score on its snippet finds it (no false
    alarm); scores on the other snippets make two false alarms and miss it, at 0.5 and at every threshold within
    the false-alarm budget."""
    truth = GroundTruth({"v": VideoAnnotation(intervals=((16, 32),), num_frames=64)}, "pad_last", source="hand-made")
    found = event_metrics({"v": np.array([0.1, 0.9, 0.1, 0.1])}, truth, fps=10.0)
    assert found == {"events:event_recall": 1.0, "events:event_precision": 1.0, "events:false_alarms_per_hour": 0.0,
                     "events:recall_within_budget": 1.0}
    missed = event_metrics({"v": np.array([0.9, 0.1, 0.9, 0.9])}, truth, fps=10.0)
    assert missed["events:event_recall"] == 0.0 and missed["events:event_precision"] == 0.0
    assert missed["events:false_alarms_per_hour"] == pytest.approx(2 / (6.4 / 3600))
    assert missed["events:recall_within_budget"] == 0.0  # inverted: no threshold finds it without a false alarm


def test_small_archives_are_disjoint_draws_of_four_normal_and_three_abnormal_videos(tmp_path: Path) -> None:
    """Ped2-small's construction: each draw trains on 4 normal and 3 abnormal videos, unlabeled, and scores the 3."""
    tiny = synthetic_dataset(SyntheticSpec("tiny", 2.0, dim=16), tmp_path)
    smalls = synthetic_clip_datasets(tiny, tmp_path / "derived", ("small",))
    truth = tiny.ground_truth.annotations
    normal = [video_id for video_id in truth if not truth[video_id].intervals]
    abnormal = [video_id for video_id in truth if truth[video_id].intervals]
    assert len(smalls) == min(len(normal) // 4, len(abnormal) // 3) >= 1
    seen: set[str] = set()
    for draw, small in enumerate(smalls, start=1):
        trained, scored = small.train.video_ids, small.evaluation.video_ids
        assert small.name == f"{tiny.name}-small-{draw}" and len(trained) == 7 and trained[4:] == scored
        assert all(not truth[video_id].intervals for video_id in trained[:4])
        assert all(truth[video_id].intervals for video_id in scored)
        assert not seen & set(trained)  # disjoint draws
        seen |= set(trained)
