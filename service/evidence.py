"""The evidence cache: event thumbnails and clips, cut from a job's kept video on first request and kept in the
job's folder (``<jobs>/<id>/evidence/``), at most ``LANP_EVIDENCE_CACHE_MB`` in all (least recently used first
out), and one cut per file at a time.

Every distinct (threshold, pre-roll, post-roll) makes another clip, so without a bound a client could fill the
disk with encodes. Concurrent requests for one file wait for the one cut (before, eight of them cut into one fixed
temporary name and answered 500 or a broken file); a cut writes to a name of its own and is renamed into place
only when complete, and a failed cut leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path


class EvidenceCache:
    """Evidence files by path, bounded to ``max_bytes`` (LRU); ``jobs_dir``'s existing evidence is counted at start."""

    def __init__(self, jobs_dir: Path, max_bytes: int):
        self.max_bytes = max_bytes
        self._sizes: OrderedDict[Path, int] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()
        self._cuts: dict[Path, tuple[asyncio.Lock, int]] = {}  # path -> (its lock, requests using it)
        kept = sorted(jobs_dir.glob("*/evidence/*"), key=lambda path: path.stat().st_mtime)
        for path in kept:
            if path.name.startswith("."):
                path.unlink(missing_ok=True)  # a cut that a killed server left unfinished
            else:
                self._sizes[path] = path.stat().st_size
        self._evict(keep=None)

    @property
    def bytes_held(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    async def get(self, path: Path, cut: Callable[[Path], object], before_cut: Callable[[], None]) -> Path:
        """``path``, cut first by ``cut(temporary)`` (in a thread, after ``before_cut()``, which may refuse) unless
        it is cached; requests for the same path wait for one cut."""
        lock, users = self._cuts.get(path, (asyncio.Lock(), 0))
        self._cuts[path] = (lock, users + 1)
        try:
            async with lock:
                if path.is_file():
                    self._used(path)
                    return path
                before_cut()
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_name(f".{uuid.uuid4().hex[:8]}.{path.name}")
                try:
                    await asyncio.to_thread(cut, temporary)
                    temporary.replace(path)
                finally:
                    temporary.unlink(missing_ok=True)
                self._used(path)
                self._evict(keep=path)
                return path
        finally:
            lock, users = self._cuts[path]
            if users == 1:
                del self._cuts[path]
            else:
                self._cuts[path] = (lock, users - 1)

    def forget_job(self, job_folder: Path) -> None:
        """Stop counting the evidence of a job whose folder was deleted."""
        with self._lock:
            for path in [path for path in self._sizes if path.is_relative_to(job_folder)]:
                del self._sizes[path]

    def _used(self, path: Path) -> None:
        with self._lock:
            self._sizes[path] = path.stat().st_size
            self._sizes.move_to_end(path)

    def _evict(self, keep: Path | None) -> None:
        """Delete the least recently used files until the cache fits (never ``keep``, the file being answered)."""
        with self._lock:
            held = sum(self._sizes.values())
            for path in list(self._sizes):
                if held <= self.max_bytes:
                    break
                if path != keep:
                    held -= self._sizes.pop(path)
                    path.unlink(missing_ok=True)
