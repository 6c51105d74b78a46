"""The Ray engine on a local Ray instance gives the same outputs as the local engine (skipped without Ray)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from pipeline.batch import BatchError, run_batch
from pipeline.inputs import expand_inputs
from tests.pipeline.batch_fixtures import BAD_IDS


def _documents(out: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((out / "videos").glob("*.json"))}


def test_ray_engine_matches_the_local_engine(archive: Path, model_dir: Path, reference: Path,
                                             tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    import pyarrow.parquet as pq

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = run_batch(expand_inputs([archive]), model_dir, tmp_path, engine="ray", workers=2, plots=True,
                           device="cpu", progress=False)
    finally:
        ray.shutdown()
    assert report.failed == BAD_IDS and report.scored == report.total - len(BAD_IDS)

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
    from pipeline.ray_engine import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(BatchError, match=r"pip install 'lanp-vad\[ray\]'"):
        require_ray()
