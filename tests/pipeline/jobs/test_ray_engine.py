"""The Ray engine on a local Ray instance gives the same outputs as the local engine (skipped without Ray)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from pipeline.jobs.batch import BatchError, run_batch
from pipeline.video.inputs import expand_inputs
from tests.pipeline.jobs.batch_fixtures import BAD_IDS


def _documents(out: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((out / "videos").glob("*.json"))}


@pytest.fixture(scope="module")
def local_ray() -> Iterator[object]:
    """A local Ray instance with 2 CPUs for this module's tests."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_engine_matches_the_local_engine(local_ray: object, archive: Path, model_dir: Path, reference: Path,
                                             tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    report = run_batch(expand_inputs([archive]), model_dir, tmp_path, engine="ray", workers=2, plots=True,
                       device="cpu", progress=False)
    errors = [line for line in (tmp_path / "manifest.jsonl").read_text().splitlines() if '"failed"' in line]
    assert report.failed == BAD_IDS and report.scored == report.total - len(BAD_IDS), errors

    local, distributed = _documents(reference), _documents(tmp_path)
    assert sorted(distributed) == sorted(local)
    for video_id, document in distributed.items():
        expected = local[video_id]
        np.testing.assert_allclose(document["snippet_scores"], expected["snippet_scores"], rtol=0, atol=1e-6)
        assert {k: v for k, v in document.items() if k not in ("snippet_scores", "frame_scores", "segments")} == {
            k: v for k, v in expected.items() if k not in ("snippet_scores", "frame_scores", "segments")
        }
        assert (tmp_path / "plots" / f"{video_id}.png").exists()
    columns = ["video_id", "snippet", "start_frame", "end_frame", "start_s", "end_s", "model", "spec_hash"]
    ours, theirs = pq.read_table(tmp_path / "snippets.parquet"), pq.read_table(reference / "snippets.parquet")
    assert ours.select(columns).equals(theirs.select(columns))
    np.testing.assert_allclose(ours["score"].to_numpy(), theirs["score"].to_numpy(), rtol=0, atol=1e-6)
    failed_rows = [line for line in (tmp_path / "summary.csv").read_text().splitlines() if ",failed," in line]
    assert failed_rows == [line for line in (reference / "summary.csv").read_text().splitlines()
                           if ",failed," in line]


def test_missing_ray_is_reported_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.jobs.ray_engine import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(BatchError, match=r"pip install 'lanp-vad\[ray\]'"):
        require_ray()


def test_ray_extraction_fills_the_same_feature_store_as_the_local_engine(local_ray: object, archive: Path,
                                                                         model_dir: Path, tmp_path: Path) -> None:
    from pipeline.features.archive import extract_archive
    from pipeline.features.extractor import FeatureExtractor
    from pipeline.features.featureset import open_feature_set
    from pipeline.features.spec import FeatureSpec
    from pipeline.jobs.ray_engine import ray_extract_archive

    spec = FeatureSpec.load(model_dir)
    inputs = [archive / "cctv" / "Normal__Dava1_2.mp4", archive / "cctv" / "Dava__Dava1_1.mp4",
              archive / "bad" / "notes.mp4"]
    local = extract_archive(inputs, tmp_path / "local", FeatureExtractor.from_spec(spec, device="cpu"), workers=1,
                            progress=False)
    distributed = ray_extract_archive(inputs, tmp_path / "ray", spec=spec, weights=None, workers=2, device="cpu",
                                      progress=False)
    assert sorted(distributed.extracted) == sorted(local.extracted) == ["Dava__Dava1_1", "Normal__Dava1_2"]
    assert list(distributed.failed) == list(local.failed) == ["notes"]
    ours, theirs = open_feature_set(tmp_path / "ray"), open_feature_set(tmp_path / "local")
    assert ours.spec == theirs.spec == spec
    for video_id in theirs.video_ids:
        np.testing.assert_allclose(ours.load(video_id), theirs.load(video_id), rtol=0, atol=1e-5)
    again = ray_extract_archive(inputs, tmp_path / "ray", spec=spec, weights=None, workers=1, device="cpu",
                                progress=False)
    assert sorted(again.skipped) == ["Dava__Dava1_1", "Normal__Dava1_2"] and list(again.failed) == ["notes"]
