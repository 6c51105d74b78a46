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
