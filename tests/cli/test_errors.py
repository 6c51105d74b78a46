"""The CLI's error contract: a user error is one line naming its kind (exit 2); a bug keeps its traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.cli import main
from lanp_vad.models.errors import ErrorKind, InternalError, LANPError, UserError, VideoError, error_kind
from lanp_vad.pipeline.features.featureset import FeatureSetError
from tests.conftest import REPO_ROOT


def test_a_bad_override_is_one_line_with_its_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "a.npy", np.zeros((8, 4), np.float32))
    status = main(["train", "--features", str(tmp_path), "--out", str(tmp_path / "m"), "--set", "nope.key=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2
    assert len(err) == 1 and f"({ErrorKind.INVALID_CONFIG})" in err[0] and "nope.key" in err[0]
    assert not (tmp_path / "m").exists()


def test_a_missing_feature_folder_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["propagate", "--features", str(tmp_path / "absent"), "--out", str(tmp_path / "p.json")]) == 2
    assert "error (" in capsys.readouterr().err


def test_a_bug_is_not_disguised_as_a_usage_error() -> None:
    """A plain ValueError from inside a command (a bug, not the user's input) must surface with its traceback."""
    code = (
        "import sys, lanp_vad.cli as cli\n"
        "def boom(args): raise ValueError('numpy bug')\n"
        "parser = cli.build_parser\n"
        "def build():\n"
        "    p = parser(); p.set_defaults(handler=boom); [a.set_defaults(handler=boom) for a in"
        " p._subparsers._group_actions[0].choices.values()]; return p\n"
        "cli.build_parser = build\n"
        "sys.exit(cli.main(['propagate', '--features', 'x', '--out', 'y']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "numpy bug" in result.stderr


def test_one_root_and_kinds_for_every_class() -> None:
    assert issubclass(FeatureSetError, UserError) and issubclass(UserError, LANPError)
    assert error_kind(FeatureSetError("x")) == ErrorKind.INVALID_FEATURES
    assert error_kind(ValueError("x")) == ErrorKind.INTERNAL
    assert error_kind(VideoError("x", kind="timeout")) == ErrorKind.TIMEOUT
    assert not issubclass(InternalError, ValueError)
