"""Fixtures for the pipeline tests; the batch-job ones (a tiny model, a real-clip archive, a reference run)."""

from tests.pipeline.batch_fixtures import archive, model_dir, reference  # noqa: F401
