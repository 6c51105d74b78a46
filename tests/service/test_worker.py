"""The inference worker with a real scorer (tiny model, in-process decoding) and a real job store: progress per
snippet batch, cancel at the next batch, errors without server paths, shutdown puts the running job back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanp_vad.pipeline.scoring.config import ScoringConfig
from lanp_vad.pipeline.scoring.scorer import Scorer
from lanp_vad.service.disk import DiskGuard
from lanp_vad.service.jobs import CANCELED, COMPLETED, FAILED, PENDING, JobStore
from lanp_vad.service.metrics import ServiceMetrics
from lanp_vad.service.problems import ServiceError
from lanp_vad.service.uploads import UploadGate
from lanp_vad.service.worker import InferenceWorker, SnippetBudget, result_path
from tests.videos import write_video


class RecordingStore(JobStore):
    """The real store, also keeping every progress value it was given."""

    def __init__(self, path: Path):
        super().__init__(path)
        self.progress: list[float] = []
        self.first_progress = threading.Event()

    def set_progress(self, job_id: str, progress: float) -> None:
        self.progress.append(progress)
        self.first_progress.set()
        super().set_progress(job_id, progress)


@pytest.fixture(scope="module")
def scorer(tiny_model_dir: Path) -> Iterator[Scorer]:
    with Scorer.from_model_dir(tiny_model_dir, device="cpu", config=ScoringConfig(decode_timeout_s=None)) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1600 frames: 100 snippets, 7 batches of 16."""
    return write_video(tmp_path_factory.mktemp("worker") / "long.avi", codec="mpeg4", num_frames=1600, fps=100)


def _worker(tmp_path: Path, scorer: Scorer) -> tuple[InferenceWorker, RecordingStore, UploadGate]:
    store = RecordingStore(tmp_path / "jobs.sqlite")
    uploads = UploadGate(max_bytes=2**30, max_concurrent=2, max_bytes_in_flight=2**31, body_timeout_s=5,
                         retry_after_s=1, max_kept_bytes=2**31, disk=DiskGuard(tmp_path, min_free_bytes=0))
    worker = InferenceWorker(scorer, store, ServiceMetrics(), jobs_dir=tmp_path / "jobs", queue_size=4,
                             uploads=uploads)
    worker.start()
    return worker, store, uploads


def _upload_copy(source: Path, tmp_path: Path, uploads: UploadGate) -> Path:
    copy = tmp_path / "inputs" / "0123abcd.upload"
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(source.read_bytes())
    uploads.adopt(copy)
    return copy


def _wait_terminal(store: JobStore, job_id: str, timeout_s: float = 120) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = store.get(job_id)
        if job is not None and job.is_terminal:
            return job.status
        time.sleep(0.05)
    raise AssertionError("the job did not end")


def test_progress_moves_after_every_snippet_batch(tmp_path: Path, scorer: Scorer, long_clip: Path) -> None:
    worker, store, uploads = _worker(tmp_path, scorer)
    path = _upload_copy(long_clip, tmp_path, uploads)
    job = store.create(video="long.avi", source_kind="upload", input_path=path, threshold=None)
    worker.submit_job(job.id)
    assert _wait_terminal(store, job.id) == COMPLETED
    worker.stop()
    inside = [value for value in store.progress if 0 < value < 1]
    assert len(inside) >= 5 and inside == sorted(inside), store.progress  # 7 batches, not a jump from 0 to 1
    assert store.progress[-1] == 1.0 and result_path(tmp_path / "jobs", job.id).is_file()
    assert path.exists() and uploads.bytes_in_flight == 0  # a completed job keeps its video, no longer in flight


def test_a_canceled_job_stops_at_the_next_batch_and_its_upload_goes(
    tmp_path: Path, scorer: Scorer, long_clip: Path
) -> None:
    worker, store, uploads = _worker(tmp_path, scorer)
    path = _upload_copy(long_clip, tmp_path, uploads)
    job = store.create(video="long.avi", source_kind="upload", input_path=path, threshold=None)
    worker.submit_job(job.id)
    assert store.first_progress.wait(60)
    assert worker.cancel_job(job.id)
    assert _wait_terminal(store, job.id) == CANCELED
    worker.stop()
    assert max(store.progress) < 1.0 and not path.exists() and uploads.bytes_in_flight == 0


def test_a_failed_video_is_recorded_with_its_kind_and_no_server_path(
    tmp_path: Path, scorer: Scorer, long_clip: Path
) -> None:
    worker, store, uploads = _worker(tmp_path, scorer)
    path = _upload_copy(long_clip, tmp_path, uploads)
    path.write_bytes(path.read_bytes()[:2000])  # cut short: the header survives, the frames do not
    job = store.create(video="cut.avi", source_kind="upload", input_path=path, threshold=None)
    worker.submit_job(job.id)
    assert _wait_terminal(store, job.id) == FAILED
    worker.stop()
    record = store.get(job.id)
    assert record is not None and record.error_kind in ("corrupt", "not_video")
    assert "'cut.avi'" in (record.error or "") and str(tmp_path) not in (record.error or "")
    assert "0123abcd" not in (record.error or "") and not path.exists()


def test_a_synchronous_request_gets_a_service_error_and_its_file_is_removed(
    tmp_path: Path, scorer: Scorer
) -> None:
    worker, _, uploads = _worker(tmp_path, scorer)
    path = tmp_path / "inputs" / "feedbeef.upload"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(3000))
    request = worker.submit_score(path, "broken.mp4", None)
    with pytest.raises(ServiceError) as raised:
        request.future.result(60)
    worker.stop()
    assert raised.value.status == 422 and "'broken.mp4'" in raised.value.message
    assert "feedbeef" not in raised.value.message and not path.exists()


def test_a_request_stops_at_its_snippet_budget_with_the_413_of_its_limit(
    tmp_path: Path, scorer: Scorer, long_clip: Path
) -> None:
    """The header's figures pass the route's checks; the budget still stops a video that decodes into more work
    (a header that under-states its frames), after one snippet batch past it, with the limit named."""
    worker, _, uploads = _worker(tmp_path, scorer)
    path = _upload_copy(long_clip, tmp_path, uploads)
    request = worker.submit_score(path, "long.avi", None, budget=SnippetBudget(20, "max_sync_frames"))
    with pytest.raises(ServiceError) as raised:
        request.future.result(60)
    worker.stop()
    assert raised.value.status == 413 and raised.value.extra == {"limit": "max_sync_frames"}
    assert "'long.avi' decoded more than 20 snippets" in raised.value.message
    assert "LANP_MAX_SYNC_FRAMES" in raised.value.message and not path.exists()


def test_stopping_puts_the_running_job_back_to_pending(tmp_path: Path, scorer: Scorer, long_clip: Path) -> None:
    worker, store, uploads = _worker(tmp_path, scorer)
    path = _upload_copy(long_clip, tmp_path, uploads)
    job = store.create(video="long.avi", source_kind="upload", input_path=path, threshold=None)
    worker.submit_job(job.id)
    assert store.first_progress.wait(60)
    assert worker.stop(timeout_s=30)
    record = store.get(job.id)
    assert record is not None and record.status == PENDING and path.exists()  # runs again after the next start
