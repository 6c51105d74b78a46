"""``lanp extract`` refuses bad settings in one line (exit 2) before touching any video or building a backbone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(("options", "named"), [
    (["--runtime", "tensorrt"], "runtime"),
    (["--device", "gpu"], "unknown device 'gpu'"),
    (["--frames-per-snippet", "32"], "frames_per_snippet 32 exceeds snippet_length 16"),  # was clamped to 16
    (["--crop-size", "300", "--resize", "256"], "crop_size 300 exceeds resize 256"),
])
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path, options: list[str], named: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lanp_vad", "extract", str(tmp_path), "--out", str(tmp_path / "features"), *options],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "features").exists()


def _lanp(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lanp_vad", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}, timeout=300)


def test_like_a_model_makes_the_features_it_reads_and_the_mismatch_says_so(tmp_path: Path) -> None:
    """``lanp extract`` with its defaults makes features a model of another spec cannot read; the refusal names
    ``--like MODEL``, and ``--like`` makes features of exactly the model's spec (which it then evaluates)."""
    from lanp_vad.pipeline.features.spec import FeatureSpec
    from tests.service.tiny_model import make_tiny_model
    from tests.videos import write_video

    model = make_tiny_model(tmp_path / "model")
    clips = tmp_path / "clips"
    clips.mkdir()
    for number in range(2):
        write_video(clips / f"clip{number}.mp4", num_frames=40, width=96, height=64, fps=10)
    (tmp_path / "gt.csv").write_text("video_id,start_frame,end_frame\nclip1,10,20\n")
    evaluate = ("evaluate", "--model", model, "--gt", tmp_path / "gt.csv", "--gt-format", "csv", "--json")

    plain = _lanp("extract", clips, "--out", tmp_path / "plain", "--no-progress")
    assert plain.returncode == 0, plain.stderr
    refused = _lanp(*evaluate, "--features", tmp_path / "plain")
    assert refused.returncode == 2 and f"lanp extract --like {model}" in refused.stderr, refused.stderr

    both = _lanp("extract", clips, "--out", tmp_path / "both", "--like", model, "--backbone", "x3d_xs")
    assert both.returncode == 2 and "--like takes the feature spec" in both.stderr and "--backbone" in both.stderr
    like = _lanp("extract", clips, "--out", tmp_path / "like", "--like", model, "--no-progress")
    assert like.returncode == 0, like.stderr
    assert FeatureSpec.load(tmp_path / "like") == FeatureSpec.load(model)
    evaluated = _lanp(*evaluate, "--features", tmp_path / "like")
    assert evaluated.returncode == 0, evaluated.stderr
