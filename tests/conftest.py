"""Shared fixtures: the real data folder beside the project (``../shared/data``), skipped when absent."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (UCSD Ped2, CCTV clips, ShanghaiTech / UCF-Crime splits and ground truth)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real fixture data not found at {SHARED_DATA} (see README: Tests)")
    return SHARED_DATA


@pytest.fixture(scope="session", autouse=True)
def export_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Backbones exported for the CPU runtimes go to a folder of this run (subprocesses inherit it), not ``~``."""
    folder = tmp_path_factory.mktemp("lanp-cache")
    previous = os.environ.get("LANP_CACHE_DIR")
    os.environ["LANP_CACHE_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("LANP_CACHE_DIR", None)
    else:
        os.environ["LANP_CACHE_DIR"] = previous


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny matrices: one torch thread avoids OpenMP contention on the shared cores; restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
