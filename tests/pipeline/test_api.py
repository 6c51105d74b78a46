"""The example of docs/python-api.md, run verbatim as a plain script (no ``__main__`` guard) in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from lanp_vad.models.config import DEFAULT_PRESET
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.spec import FeatureSpec
from tests.conftest import REPO_ROOT
from tests.videos import moving_square, write_video


def documented_example() -> str:
    page = (REPO_ROOT / "docs/python-api.md").read_text()
    return re.search(r"```python\n(.*?)```", page, re.S).group(1)


def _with_flash(index: int, height: int, width: int) -> np.ndarray:
    """The moving square, and a white flash in the middle of the clip (an event)."""
    frame = moving_square(index, height, width)
    return np.full_like(frame, 255) if 20 <= index < 30 else frame


def test_the_documented_example_runs_as_a_plain_script(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    for number in range(4):
        write_video(archive / f"clip{number}.mp4", num_frames=48, fps=10,
                    content=_with_flash if number % 2 else moving_square)
    script = tmp_path / "example.py"
    script.write_text(documented_example())
    assert "__main__" not in script.read_text()
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=environment, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "4 scored, 0 failed" in result.stdout
    assert (tmp_path / "model" / "feature_stats.safetensors").is_file()
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["preset"] == DEFAULT_PRESET  # the command line's defaults: the same folder, the same model
    assert FeatureSpec.load(tmp_path / "feats").backbone == ExtractionConfig().backbone
    assert len(list((tmp_path / "results" / "videos").glob("*.json"))) == 4
