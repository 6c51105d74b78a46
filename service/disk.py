"""The work directory's disk: a free-space floor and a small reserve, so that a full disk is refused cleanly
instead of half-written.

Below ``LANP_MIN_FREE_DISK_MB`` free, ``/readyz`` says not ready and uploads, path jobs and renders are refused
with 507 ``disk_full`` before anything is written. Should the disk fill anyway (another process, one large
result), the worker frees the *reserve*, a few MiB the server set aside at start, so that the job store can still
record the job as failed (kind ``disk_full``) instead of leaving it ``running`` for ever; the reserve is set aside
again once there is room.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from lanp_vad.service.problems import disk_full

log = logging.getLogger(__name__)

RESERVE_BYTES = 4 * 2**20
"""Set aside for the job store's last writes when the disk fills."""


class DiskGuard:
    """Free space of ``work_dir`` against ``min_free_bytes``, and the reserve file."""

    def __init__(self, work_dir: Path, min_free_bytes: int, retry_after_s: int = 60):
        self.work_dir = work_dir
        self.min_free_bytes = min_free_bytes
        self.retry_after_s = retry_after_s
        self.reserve = work_dir / ".reserve"
        self._lock = threading.Lock()

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.work_dir).free

    def low(self) -> bool:
        """Whether less than the floor is free."""
        return self.free_bytes() < self.min_free_bytes

    def check_room(self, more: int, what: str) -> None:
        """507 unless ``more`` bytes can be written and the floor still be free."""
        if self.free_bytes() - more < self.min_free_bytes:
            raise disk_full(f"{what} (below LANP_MIN_FREE_DISK_MB free)", self.retry_after_s)

    def release_reserve(self) -> None:
        """Free the reserve (the disk is full: the job store's next writes need room)."""
        with self._lock:
            if self.reserve.exists():
                log.warning("the work directory's disk is full: its reserve is released")
            self.reserve.unlink(missing_ok=True)

    def restore_reserve(self) -> None:
        """Set the reserve aside again when it is missing and the disk has room for it above the floor."""
        with self._lock:
            if self.reserve.exists() or self.free_bytes() < self.min_free_bytes + RESERVE_BYTES:
                return
            try:
                with self.reserve.open("wb") as stream:
                    stream.write(bytes(RESERVE_BYTES))
            except OSError:
                self.reserve.unlink(missing_ok=True)
