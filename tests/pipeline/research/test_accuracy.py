"""The accuracy table generator end to end on the tiny configuration, and its evaluation slicing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.evaluation.groundtruth import GroundTruth, VideoAnnotation
from pipeline.features.featureset import FeatureStore, open_feature_set
from pipeline.features.spec import FeatureSpec
from pipeline.research.accuracy import (
    AccuracyDataset,
    SyntheticSpec,
    markdown_tables,
    method_rows,
    run_table,
    summarize,
    synthetic_dataset,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_table_runs_end_to_end_on_the_tiny_configuration(tmp_path: Path) -> None:
    dataset = synthetic_dataset(SyntheticSpec("tiny", 2.0, dim=16), tmp_path)
    rows = method_rows(include="core")
    records = []
    report = run_table([dataset], rows, seeds=(0,), epochs=3, eval_every=2, on_record=records.append)

    assert [record["method"] for record in records] == [row.name for row in rows]
    assert set(report.summary) == {row.name for row in rows}
    for record in records:
        assert 0 <= record["final"]["auc_roc"] <= 1 and 0 <= record["final"]["ap"] <= 1
        assert record["best"]["auc_roc"] >= record["final"]["auc_roc"]
        has_pseudo_labels = record["kind"] in ("lanp", "c2fpl")
        assert (record["pseudo_labels"] is not None) == has_pseudo_labels, record["method"]
    lanp = next(record for record in records if record["kind"] == "lanp")
    assert lanp["final"]["epoch"] == 3 and lanp["best"]["epoch"] in (2, 3)  # evaluated every 2nd and the last

    markdown = report.markdown()
    assert "best epoch (%) — chosen on the test set" in markdown
    assert all(f"| {row.name} |" in markdown for row in rows)
    restored = json.loads(report.to_json())
    assert restored["summary"]["random scorer"][dataset.name]["seeds"] == 1
    assert restored["settings"]["lanp_epochs"] == 3


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
    dataset = AccuracyDataset(
        "long", features, features, clip_truth, "test", evaluation_truth=clip_truth,
        evaluation_slices={"long_01": (3, 7), "long_02": (2, 5)},
    )  # fmt: skip
    # Inside the slices the scores match the truth exactly; outside they are adversarial and must be ignored.
    scores = {
        "long_01": np.array([9, 9, 9, 0, 1, 1, 0, 9, 9, 9], dtype=float),
        "long_02": np.array([9, 9, 0, 0, 0, 9, 9, 9], dtype=float),
    }
    metrics = dataset.measure(scores)
    assert metrics["auc_roc"] == 1.0
    assert metrics["frames"] == 16 * (4 + 3) and metrics["abnormal_frames"] == 32
