"""pipeline/files.py: atomic writes leave ordinary files (mode from the umask) and no temporary behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from pipeline.files import atomic_write_bytes


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    """Features, results and plots are output files like any tool's: 0666 minus the umask, not mkstemp's 0600."""
    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "out.json", b"{}")
        atomic_write_bytes(tmp_path / "out.json", b"[]")  # replacing keeps the rule
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o666 & ~umask
    assert [path.name for path in tmp_path.iterdir()] == ["out.json"]
    assert (tmp_path / "out.json").read_bytes() == b"[]"
