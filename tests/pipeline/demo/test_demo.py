"""``lanp demo --quick`` for real: a subprocess on the CPU, then every output it names is checked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lanp_vad.pipeline.demo.run import QUICK, DemoError, DemoSettings, demo_config
from lanp_vad.pipeline.features.featureset import open_feature_set
from lanp_vad.pipeline.training.model_dir import load_model

# Measured on the quick archive (seed 0): frame AUC 0.817, held-back clip 0.953. The bars leave room for numeric
# differences between machines while still failing if the demo stops finding its anomalies.
ARCHIVE_AUC_BAR = 0.7
HELD_OUT_AUC_BAR = 0.6


@pytest.mark.slow
def test_quick_demo_finds_the_anomalies_and_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    completed = subprocess.run(
        [sys.executable, "-m", "lanp_vad", "demo", "--quick", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, timeout=400, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    printed = completed.stdout
    auc = float(re.search(r"^frame AUC: ([0-9.]+)", printed, re.MULTILINE).group(1))
    assert auc > ARCHIVE_AUC_BAR, printed
    assert f"files in {out.resolve()}" in printed

    summary = json.loads((out / "demo.json").read_text())
    assert summary["archive_metrics"]["auc_roc"] == pytest.approx(auc, abs=1e-4)
    assert summary["clips"] == QUICK.clips and summary["frames"] == QUICK.clips * QUICK.num_frames
    assert summary["held_out"]["auc_roc"] > HELD_OUT_AUC_BAR
    assert set(summary["seconds"]) == {"generate", "extract", "train", "evaluate", "score", "total"}

    held_id = summary["held_out"]["video_id"]
    scores = json.loads((out / "held_out" / f"{held_id}.json").read_text())
    assert scores["num_frames"] == QUICK.num_frames == len(scores["frame_scores"])
    assert all(0.0 <= value <= 1.0 for value in scores["frame_scores"])
    assert (out / "held_out" / f"{held_id}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    loaded = load_model(out / "model")
    assert loaded.spec.backbone == "efficientnet_lite0" and not loaded.spec.weights.startswith("random-init")
    assert loaded.config.preset == "default" and loaded.config.train.drop_last is False  # one batch of 12 clips
    assert loaded.metadata["training"]["steps"] == QUICK.epochs
    features = open_feature_set(out / "features")
    assert len(features) == QUICK.clips
    assert features.load(features.video_ids[0]).shape == (QUICK.num_frames // 16, loaded.spec.dim)
    truth = (out / "clips" / "ground_truth.csv").read_text().splitlines()
    assert truth[0] == "video_id,start_frame,end_frame" and len(truth) == 1 + round(QUICK.clips / 2)


def test_demo_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    from lanp_vad.pipeline.demo.run import run_demo

    with pytest.raises(DemoError, match="holds no previous demo"):
        run_demo(tmp_path, QUICK, progress=False)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_demo_settings_and_config_are_checked() -> None:
    with pytest.raises(DemoError, match="at least 4 clips"):
        DemoSettings(clips=2)
    config = demo_config(QUICK)  # the product default: batches of min(30, N) through drop_last=false
    assert (config.preset, config.train.drop_last, config.train.epochs) == ("default", False, QUICK.epochs)
    assert config.pseudo.min_confident_normal == 1
