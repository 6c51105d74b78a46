"""``lanp propagate`` end to end on written feature files: output content, crops, short videos, NaN, atomicity."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.cli import main
from lanp_vad.models.config import preset
from lanp_vad.models.propagation import propagate
from lanp_vad.pipeline.research.synthetic import write_synthetic_features

REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_features(tmp_path_factory.mktemp("tiny"), scale="tiny", dim=24, salience=2.0, seed=1)


def test_writes_z_scores_and_pseudo_labels(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "prop.json"
    argv = ["propagate", "--features", str(tiny_set), "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--preset", "reference"]) == 0  # the official rules: video score std(z)
    result = json.loads(out.read_text())
    videos = result["videos"]
    assert len(videos) == 40 and result["num_abnormal"] == 20  # reference: half the videos
    assert result["config"]["propagation"]["affinity"] == "rms"
    first_id = sorted(videos)[0]
    features = np.load(tiny_set / f"{first_id}.npy")
    (expected,) = propagate([features], preset("reference").propagation)
    np.testing.assert_allclose(videos[first_id]["z"], expected, rtol=1e-6)
    for entry in videos.values():
        z, labels = np.array(entry["z"]), np.array(entry["pseudo_labels"])
        assert entry["video_score"] == pytest.approx(np.std(z))
        assert labels.sum() == (int(0.4 * len(z)) if entry["abnormal"] else 0)
        assert not (entry["abnormal"] and entry["confident_normal"])
    assert sum(entry["confident_normal"] for entry in videos.values()) == 2  # int(0.1 * 20)

    assert main(argv) == 0  # without --preset: the product default and its length-neutral video score
    default = json.loads(out.read_text())
    assert default["preset"] == "default" and default["config"]["pseudo"]["video_score"] == "decorrelation"
    assert default["videos"][first_id]["z"] == videos[first_id]["z"]  # same propagation, another video score


def test_preset_and_overrides_are_applied(tiny_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "prop.json"
    argv = ["propagate", "--features", str(tiny_set), "--out", str(out), "--preset", "reference-sh",
            "--set", "pseudo.abnormal_fraction=auto", "--set", "propagation.band_k=10"]
    assert main(argv) == 0
    result = json.loads(out.read_text())
    assert result["preset"] == "reference-sh"
    assert result["config"]["propagation"]["affinity"] == "cosine"
    assert result["config"]["propagation"]["band_k"] == 10
    assert 0 < result["abnormal_fraction"] < 1


def test_ten_crop_features_are_averaged(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    crops = np.abs(rng.normal(0.5, 0.1, (30, 10, 16))).astype(np.float32)
    folder = tmp_path / "features"
    folder.mkdir()
    np.save(folder / "clip_i3d.npy", crops)
    np.save(folder / "other_i3d.npy", np.abs(rng.normal(0.5, 0.1, (20, 10, 16))).astype(np.float32))
    out = tmp_path / "prop.json"
    assert main(["propagate", "--features", str(folder), "--out", str(out)]) == 0
    z = json.loads(out.read_text())["videos"]["clip"]["z"]
    (expected,) = propagate([crops.mean(axis=1)], preset("reference").propagation)
    np.testing.assert_allclose(z, expected, rtol=1e-6)


def test_short_video_is_named_or_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    np.save(folder / "long.npy", np.ones((12, 4), np.float32))
    np.save(folder / "Stealing019.npy", np.ones((2, 4), np.float32))
    out = tmp_path / "prop.json"
    assert main(["propagate", "--features", str(folder), "--out", str(out)]) == 2
    assert "Stealing019" in capsys.readouterr().err and not out.exists()
    assert main(["propagate", "--features", str(folder), "--out", str(out), "--skip-short"]) == 0
    assert "Stealing019" in capsys.readouterr().err
    result = json.loads(out.read_text())
    assert list(result["videos"]) == ["long"] and result["skipped_short"] == ["Stealing019"]


def test_nan_features_are_reported_and_nothing_written(tmp_path: Path) -> None:
    folder = tmp_path / "features"
    folder.mkdir()
    np.save(folder / "fine.npy", np.ones((12, 4), np.float32))
    broken = np.ones((12, 4), np.float32)
    broken[5, 2] = np.nan
    np.save(folder / "Arson011.npy", broken)
    out = tmp_path / "prop.json"
    out.write_text("previous content")
    completed = subprocess.run(
        [sys.executable, "-m", "lanp_vad", "propagate", "--features", str(folder), "--out", str(out)],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )
    assert completed.returncode == 2
    assert "Arson011" in completed.stderr and "NaN" in completed.stderr
    assert out.read_text() == "previous content"
    assert list(tmp_path.glob(".prop.json.*")) == []
