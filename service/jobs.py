"""The SQLite job store: every job the service has accepted, surviving restarts.

Restart policy (``recover``): a job that was ``running`` when the server died is re-queued as ``pending`` while it
has started fewer than ``max_attempts`` times, else marked ``failed`` (kind ``interrupted``), so a video that
crashes the server cannot crash it forever. ``pending`` jobs are re-queued in creation order. Inputs of re-queued
jobs stay on disk until the job ends.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

PENDING, RUNNING, COMPLETED, FAILED, CANCELED = "pending", "running", "completed", "failed", "canceled"
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    video TEXT NOT NULL,
    source_kind TEXT NOT NULL,
    input_path TEXT NOT NULL,
    threshold REAL,
    progress REAL NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    error_kind TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL
)
"""


@dataclass(frozen=True)
class Job:
    """One row of the store. ``source_kind`` is ``upload`` (input owned and removed by the service) or
    ``path`` (a file under the data root, never removed)."""

    id: str
    status: str
    video: str
    source_kind: str
    input_path: str
    threshold: float | None
    progress: float
    attempts: int
    error_kind: str | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def public(self) -> dict[str, Any]:
        """The fields a client sees (no server paths)."""
        data = asdict(self)
        for private in ("input_path", "source_kind", "attempts"):
            data.pop(private)
        return data


class JobStore:
    """Thread-safe access to the jobs table (one connection, one lock; WAL so readers never block)."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def create(self, *, video: str, source_kind: str, input_path: Path, threshold: float | None) -> Job:
        job_id = uuid.uuid4().hex
        self._execute(
            "INSERT INTO jobs (id, status, video, source_kind, input_path, threshold, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (job_id, PENDING, video, source_kind, str(input_path), threshold, time.time()),
        )
        job = self.get(job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> Job | None:
        rows = self._execute("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return Job(**dict(rows[0])) if rows else None

    def delete(self, job_id: str) -> None:
        self._execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def start(self, job_id: str) -> bool:
        """pending -> running (one more attempt); False when the job is no longer pending (e.g. canceled)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = ?, attempts = attempts + 1, started_at = ?, progress = 0 "
                "WHERE id = ? AND status = ?",
                (RUNNING, time.time(), job_id, PENDING),
            )
            return cursor.rowcount == 1

    def set_progress(self, job_id: str, progress: float) -> None:
        self._execute("UPDATE jobs SET progress = ? WHERE id = ? AND status = ?", (progress, job_id, RUNNING))

    def finish(self, job_id: str, status: str, *, error_kind: str | None = None, error: str | None = None) -> bool:
        """Move a job that is not yet terminal to ``status``; False when it already ended."""
        if status not in TERMINAL:
            raise ValueError(f"{status!r} is not a terminal status")
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET status = ?, error_kind = ?, error = ?, finished_at = ?, "
                "progress = CASE WHEN ? = 'completed' THEN 1 ELSE progress END "
                "WHERE id = ? AND status NOT IN ('completed', 'failed', 'canceled')",
                (status, error_kind, error, time.time(), status, job_id),
            )
            return cursor.rowcount == 1

    def requeue(self, job_id: str) -> None:
        """running -> pending (the server is stopping under it)."""
        self._execute(
            "UPDATE jobs SET status = ?, progress = 0 WHERE id = ? AND status = ?", (PENDING, job_id, RUNNING)
        )

    def recover(self, max_attempts: int) -> list[Job]:
        """After a restart: re-queue or fail the jobs that were running, and return every pending job in order."""
        now = time.time()
        with self._lock:
            self._db.execute(
                "UPDATE jobs SET status = ?, error_kind = 'interrupted', finished_at = ?, "
                "error = 'the server stopped while this job was running, ' || attempts || ' time(s)' "
                "WHERE status = ? AND attempts >= ?",
                (FAILED, now, RUNNING, max_attempts),
            )
            self._db.execute("UPDATE jobs SET status = ?, progress = 0 WHERE status = ?", (PENDING, RUNNING))
        rows = self._execute("SELECT * FROM jobs WHERE status = ? ORDER BY created_at", (PENDING,))
        return [Job(**dict(row)) for row in rows]

    def counts(self) -> dict[str, int]:
        rows = self._execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {row["status"]: row["n"] for row in rows}
