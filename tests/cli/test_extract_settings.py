"""``lanp extract`` refuses bad settings in one line (exit 2) before touching any video or building a backbone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.parametrize(("option", "value", "named"), [("--runtime", "tensorrt", "runtime"),
                                                        ("--device", "gpu", "unknown device 'gpu'")])
def test_a_bad_setting_is_one_line_and_exit_2(tmp_path: Path, option: str, value: str, named: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lanp_vad", "extract", str(tmp_path), "--out", str(tmp_path / "features"), option,
         value], env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "features").exists()
