"""Shared fixtures: the real data folder beside the project (``../shared/data``), skipped when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (UCSD Ped2, CCTV clips, ShanghaiTech / UCF-Crime splits and ground truth)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real fixture data not found at {SHARED_DATA} (see README: Tests)")
    return SHARED_DATA
