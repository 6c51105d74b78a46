"""The SQLite job store: every job the service has accepted, surviving restarts.

Restart policy (``recover``): a job that was ``running`` when the server died is re-queued as ``pending`` while it
has started fewer than ``max_attempts`` times, else marked ``failed`` (kind ``interrupted``), so a video that
crashes the server cannot crash it forever; the caller removes the uploads of the jobs it failed. ``pending`` jobs
are re-queued in creation order. Inputs of re-queued jobs stay on disk until the job ends.

Retention (``expire``): jobs that ended before a cut-off are deleted (the caller removes their files). Webhook
delivery state (``webhook_status``, ``webhook_attempts``, ``webhook_error``) is part of each record. A database
written by an older version gains the new columns when opened.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lanp_vad.models.errors import ErrorKind, InternalError

PENDING, RUNNING, COMPLETED, FAILED, CANCELED = "pending", "running", "completed", "failed", "canceled"
STATUSES = (PENDING, RUNNING, COMPLETED, FAILED, CANCELED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED})
NO_WEBHOOK, WEBHOOK_PENDING, WEBHOOK_DELIVERED, WEBHOOK_FAILED = "none", "pending", "delivered", "failed"

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
# Columns added after the first release: (name, declaration); added to older databases on open.
_ADDED_COLUMNS = (
    ("callback_url", "TEXT"),
    ("webhook_status", f"TEXT NOT NULL DEFAULT '{NO_WEBHOOK}'"),
    ("webhook_attempts", "INTEGER NOT NULL DEFAULT 0"),
    ("webhook_error", "TEXT"),
    ("event_options", "TEXT"),
)


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
    callback_url: str | None
    webhook_status: str
    webhook_attempts: int
    webhook_error: str | None
    event_options: str | None  # JSON of the event rules the job overrides (ScoringConfig field names)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def events(self) -> dict[str, float]:
        """The event rules this job overrides (empty: the model's)."""
        return json.loads(self.event_options) if self.event_options else {}

    def public(self) -> dict[str, Any]:
        """The fields a client sees (no server paths)."""
        data = asdict(self)
        for private in ("input_path", "source_kind", "attempts", "callback_url"):
            data.pop(private)
        data["event_options"] = self.events
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
        present = {row["name"] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for name, declaration in _ADDED_COLUMNS:
            if name not in present:
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {declaration}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def create(
        self,
        *,
        video: str,
        source_kind: str,
        input_path: Path,
        threshold: float | None,
        callback_url: str | None = None,
        webhook: bool = False,
        events: dict[str, float] | None = None,
    ) -> Job:
        """A new pending job; ``webhook``: someone (its ``callback_url`` or the server-wide URL) awaits its end."""
        job_id = uuid.uuid4().hex
        self._execute(
            "INSERT INTO jobs (id, status, video, source_kind, input_path, threshold, created_at, callback_url, "
            "webhook_status, event_options) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                job_id,
                PENDING,
                video,
                source_kind,
                str(input_path),
                threshold,
                time.time(),
                callback_url,
                WEBHOOK_PENDING if webhook else NO_WEBHOOK,
                json.dumps(events) if events else None,
            ),
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
            raise InternalError(f"{status!r} is not a terminal status")
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

    def recover(self, max_attempts: int) -> tuple[list[Job], list[Job]]:
        """After a restart: re-queue or fail the jobs that were running. Returns every pending job in order (to
        run) and the jobs failed as interrupted now (whose uploads the caller removes)."""
        now = time.time()
        with self._lock:
            exhausted = [
                Job(**dict(row))
                for row in self._db.execute(
                    "SELECT * FROM jobs WHERE status = ? AND attempts >= ?", (RUNNING, max_attempts)
                ).fetchall()
            ]
            self._db.execute(
                "UPDATE jobs SET status = ?, error_kind = ?, finished_at = ?, "
                "error = 'the server stopped while this job was running, ' || attempts || ' time(s)' "
                "WHERE status = ? AND attempts >= ?",
                (FAILED, ErrorKind.INTERRUPTED.value, now, RUNNING, max_attempts),
            )
            self._db.execute("UPDATE jobs SET status = ?, progress = 0 WHERE status = ?", (PENDING, RUNNING))
        rows = self._execute("SELECT * FROM jobs WHERE status = ? ORDER BY created_at", (PENDING,))
        failed = [job for job in (self.get(job.id) for job in exhausted) if job is not None]
        return [Job(**dict(row)) for row in rows], failed

    def list(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> tuple[list[Job], int]:
        """Jobs newest first (optionally of one ``status``), one page, and how many there are in all."""
        where, parameters = ("WHERE status = ?", (status,)) if status else ("", ())
        rows = self._execute(
            f"SELECT * FROM jobs {where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?", (*parameters, limit, offset)
        )
        total = self._execute(f"SELECT COUNT(*) AS n FROM jobs {where}", parameters)[0]["n"]
        return [Job(**dict(row)) for row in rows], int(total)

    def expire(self, finished_before: float) -> list[Job]:
        """Delete the jobs that ended before ``finished_before`` (and whose webhook is not still being delivered);
        returns them, so that the caller removes their files."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE status IN ('completed', 'failed', 'canceled') AND finished_at < ? "
                "AND webhook_status != ?",
                (finished_before, WEBHOOK_PENDING),
            ).fetchall()
            self._db.executemany("DELETE FROM jobs WHERE id = ?", [(row["id"],) for row in rows])
        return [Job(**dict(row)) for row in rows]

    def set_webhook(self, job_id: str, status: str, *, attempts: int, error: str | None) -> None:
        self._execute(
            "UPDATE jobs SET webhook_status = ?, webhook_attempts = ?, webhook_error = ? WHERE id = ?",
            (status, attempts, error, job_id),
        )

    def kept_uploads(self) -> list[Path]:
        """The uploaded videos of completed jobs (kept for the review page), oldest first."""
        rows = self._execute("SELECT input_path FROM jobs WHERE status = ? AND source_kind = 'upload' "
                             "ORDER BY finished_at", (COMPLETED,))
        return [Path(row["input_path"]) for row in rows]

    def undelivered(self) -> list[Job]:
        """Ended jobs whose webhook is still to be delivered (after a restart)."""
        rows = self._execute(
            "SELECT * FROM jobs WHERE webhook_status = ? AND status IN ('completed', 'failed', 'canceled') "
            "ORDER BY finished_at",
            (WEBHOOK_PENDING,),
        )
        return [Job(**dict(row)) for row in rows]

    def counts(self) -> dict[str, int]:
        rows = self._execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {row["status"]: row["n"] for row in rows}
