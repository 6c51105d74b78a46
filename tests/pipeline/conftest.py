"""Fixtures for the pipeline tests: one torch thread for tiny models (the batch-job fixtures live in
tests/pipeline/jobs/conftest.py)."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny matrices: one torch thread avoids OpenMP contention on the shared cores; restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
