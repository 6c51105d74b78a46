"""The length-bias table on the official ShanghaiTech propagation output (the issue's measurement, as printed by
``bench/accuracy.py --length-bias``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from lanp_vad.pipeline.research.length_bias import SH_SCORES, SH_SPLIT, markdown, score_table


def test_std_z_follows_length_and_the_null_scores_do_not(shared_data: Path) -> None:
    released = json.loads((shared_data / SH_SCORES).read_text())
    labels = {line.split(",")[0]: int(line.split(",")[1]) for line in (shared_data / SH_SPLIT).read_text().split()}
    z = [np.asarray(released[video]["pseudo_label_scores"]) for video in released]
    rows = {row["score"]: row for row in score_table(z, np.array([labels[video] for video in released]))}

    assert rows["std(z) (official)"]["spearman_T"] < -0.85 and rows["std(z) (official)"]["auc"] > 0.9
    assert rows["length alone (shorter = abnormal)"]["auc"] > rows["std(z) (official)"]["auc"]  # the finding
    for name in ("decorrelation", "shape_deficit"):
        row = rows[f"{name} vs z_null(T)"]
        assert abs(row["spearman_T"]) < 0.2, name
        assert row["T 0-20"] > 0.6 and row["T 20-40"] > 0.6, name  # above std(z)'s 0.61 / 0.62 inside the strata
    assert "| decorrelation vs z_null(T) | -0.146 | 0.667 |" in markdown(list(rows.values()))
