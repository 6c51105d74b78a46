"""The README's accuracy recipe, small: plain ``lanp extract / train / evaluate / score`` on a few real Ped2 clips.

The figures of docs/ACCURACY.md come from these commands on all 28 clips; here 4 normal and 3 abnormal clips check
that the recipe runs end to end with the defaults, finds the anomalies, gives scores that rank within a video
(not a 0/1 step) and finds events at the model's own threshold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

TRAIN_CLIPS = ("01", "02", "03", "04")
TEST_CLIPS = ("01", "02", "04")  # anomalies from frame 61, 95 and 31 to the end


def _lanp(*arguments: object, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    run = subprocess.run([sys.executable, "-m", "lanp_vad", *map(str, arguments)], capture_output=True, text=True,
                         timeout=timeout)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.mark.timeout(1800)
def test_the_readme_recipe_on_a_few_ped2_clips(shared_data: Path, tmp_path: Path) -> None:
    videos = shared_data / "ucsd-ped2" / "videos"
    archive = tmp_path / "archive"
    for split, clips in (("train", TRAIN_CLIPS), ("test", TEST_CLIPS)):
        (archive / split).mkdir(parents=True)
        for clip in clips:
            (archive / split / f"{clip}.mp4").symlink_to(videos / split / f"{clip}.mp4")

    _lanp("extract", archive, "--out", tmp_path / "feats", "--no-progress")
    _lanp("train", "--features", tmp_path / "feats", "--out", tmp_path / "model", "--no-progress")
    metadata = json.loads((tmp_path / "model" / "metadata.json").read_text())
    assert metadata["archive"]["mode"] == "mixed" and metadata["threshold"] == 0.5
    _lanp("extract", archive / "test", "--out", tmp_path / "test-feats", "--no-progress")
    report = json.loads(_lanp("evaluate", "--model", tmp_path / "model", "--features", tmp_path / "test-feats",
                              "--gt", shared_data / "ucsd-ped2" / "ped2.mat", "--json").stdout)  # fmt: skip
    assert report["auc_roc"] > 0.6, report
    events = report["events"]["at_threshold"]
    assert events["threshold"] == 0.5 and events["detected"] >= 2, events

    scored = json.loads(_lanp("score", archive / "test" / "01.mp4", "--model", tmp_path / "model").stdout)
    frames = np.asarray(scored["frame_scores"])
    assert np.mean((frames < 0.05) | (frames > 0.95)) < 0.5, "scores saturate"
    assert not [w for w in scored["warnings"] if w["kind"] == "saturated"], scored["warnings"]
