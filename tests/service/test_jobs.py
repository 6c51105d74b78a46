"""The SQLite job store on its own (restart recovery, listing, retention, schema migration), and the server's
start-up recovery with a real app: a job interrupted too often is failed and its upload removed (defect 4)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from fastapi.testclient import TestClient

from lanp_vad.service.app import create_app, load_scorer
from lanp_vad.service.jobs import COMPLETED, FAILED, PENDING, JobStore
from lanp_vad.service.settings import Settings


def _store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite")


def test_recover_requeues_running_jobs_until_their_attempts_are_spent(tmp_path: Path) -> None:
    store = _store(tmp_path)
    once = store.create(video="once.mp4", source_kind="upload", input_path=tmp_path / "a", threshold=None)
    twice = store.create(video="twice.mp4", source_kind="upload", input_path=tmp_path / "b", threshold=0.3)
    waiting = store.create(video="waiting.mp4", source_kind="path", input_path=tmp_path / "c", threshold=None)
    for job in (once, twice, twice):
        store.requeue(job.id)
        assert store.start(job.id)
    pending, failed = store.recover(max_attempts=2)
    assert [job.id for job in pending] == [once.id, waiting.id]  # creation order
    assert [job.id for job in failed] == [twice.id]
    record = store.get(twice.id)
    assert record is not None and record.status == FAILED and record.error_kind == "interrupted"
    assert "2 time(s)" in (record.error or "")
    assert store.get(once.id).status == PENDING and store.get(once.id).progress == 0  # type: ignore[union-attr]


def test_list_pages_newest_first_and_filters_by_status(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ids = []
    for index in range(5):
        ids.append(store.create(video=f"{index}.mp4", source_kind="path", input_path=tmp_path, threshold=None).id)
        time.sleep(0.002)
    store.start(ids[1])
    store.finish(ids[1], COMPLETED)
    page, total = store.list(limit=2, offset=1)
    assert total == 5 and [job.id for job in page] == [ids[3], ids[2]]
    done, done_total = store.list(status=COMPLETED)
    assert done_total == 1 and [job.id for job in done] == [ids[1]]


def test_expire_deletes_only_jobs_that_ended_before_the_cut_off(tmp_path: Path) -> None:
    store = _store(tmp_path)
    ended = store.create(video="old.mp4", source_kind="path", input_path=tmp_path, threshold=None)
    running = store.create(video="running.mp4", source_kind="path", input_path=tmp_path, threshold=None)
    awaited = store.create(video="hook.mp4", source_kind="path", input_path=tmp_path, threshold=None, webhook=True)
    for job in (ended, running, awaited):
        store.start(job.id)
    store.finish(ended.id, COMPLETED)
    store.finish(awaited.id, COMPLETED)
    assert store.expire(time.time() - 60) == []
    expired = store.expire(time.time() + 1)
    assert [job.id for job in expired] == [ended.id]  # the webhook still owed keeps its job
    assert store.get(ended.id) is None and store.get(running.id) is not None and store.get(awaited.id) is not None


def test_a_database_of_the_first_release_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, status TEXT NOT NULL, video TEXT NOT NULL, source_kind TEXT NOT "
        "NULL, input_path TEXT NOT NULL, threshold REAL, progress REAL NOT NULL DEFAULT 0, attempts INTEGER NOT "
        "NULL DEFAULT 0, error_kind TEXT, error TEXT, created_at REAL NOT NULL, started_at REAL, finished_at REAL)"
    )
    old.execute("INSERT INTO jobs (id, status, video, source_kind, input_path, created_at) VALUES "
                "('j1', 'completed', 'a.mp4', 'path', '/x', 1.0)")
    old.commit()
    old.close()
    job = JobStore(path).get("j1")
    assert job is not None and job.webhook_status == "none" and job.callback_url is None


def test_start_up_fails_a_job_interrupted_too_often_and_removes_its_upload(tmp_path: Path,
                                                                          tiny_model_dir: Path) -> None:
    """Defect 4: the upload of a job that recovery marks failed was never deleted."""
    settings = Settings(model_dir=tiny_model_dir, device="cpu", work_dir=tmp_path / "work", isolate_decode=False)
    upload = settings.jobs_dir / "inputs" / "interrupted.upload"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"video bytes")
    store = JobStore(settings.jobs_db_path)
    job = store.create(video="crash.mp4", source_kind="upload", input_path=upload, threshold=None)
    for _ in range(settings.max_job_attempts):
        store.requeue(job.id)
        store.start(job.id)
    store.close()
    with TestClient(create_app(settings, scorer=load_scorer(settings))) as client:
        record = client.get(f"/jobs/{job.id}").json()
    assert record["status"] == "failed" and record["error_kind"] == "interrupted"
    assert not upload.exists()
