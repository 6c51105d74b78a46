"""``lanp serve`` refuses what it cannot serve in one line with exit status 2, before opening a port."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanp_vad", "serve", "--port", "1", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env,
    )


@pytest.mark.parametrize("setup", ["missing", "garbage"])
def test_a_bad_model_directory_is_one_line_and_exit_2(tmp_path: Path, setup: str) -> None:
    model = tmp_path / "model"
    if setup != "missing":
        model.mkdir()
    if setup == "garbage":
        for name in ("model.safetensors", "feature_spec.json", "config.json", "metadata.json"):
            (model / name).write_text("not what it should be")
    result = serve("--model", str(model))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lanp serve: error (invalid_model):"), result.stderr


def test_an_invalid_setting_names_its_variable(tmp_path: Path, tiny_model_dir: Path) -> None:
    import os

    result = serve("--model", str(tiny_model_dir), env={**os.environ, "LANP_QUEUE_SIZE": "zero"})
    assert result.returncode == 2 and "LANP_QUEUE_SIZE" in result.stderr and len(result.stderr.splitlines()) == 1
