"""Fixtures for the pipeline tests: one torch thread for tiny models, and the batch-job ones (a tiny model, a
real-clip archive, a reference run)."""

from collections.abc import Iterator

import pytest
import torch

from tests.pipeline.jobs.batch_fixtures import archive, model_dir, reference  # noqa: F401


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny matrices: one torch thread avoids OpenMP contention on the shared cores; restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
