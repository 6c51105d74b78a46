"""Crash-safe file plumbing shared by every room: atomic writes, fsynced JSONL logs, file hashes.

Pure standard library, importable from any layer (it imports nothing of the product). A reader never sees a torn
file written by ``atomic_write_bytes``; a log written by ``append_jsonl`` loses at most its last, torn line when
the machine dies, and ``read_jsonl`` skips that line.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

HASH_BLOCK_BYTES = 1 << 20


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so that readers see the old content or the new, never a torn one (fsynced, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    # Not mkstemp: its 0600 would make every output private; open(2) with 0666 leaves the mode to the umask.
    handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON object as a line and fsync it, so a line that was written survives a crash."""
    with path.open("a") as stream:
        stream.write(json.dumps(record) + "\n")
        stream.flush()
        os.fsync(stream.fileno())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL log, in order; a torn or foreign line is skipped, a missing file is empty."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks (weights files may be gigabytes)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        for block in iter(lambda: stream.read(HASH_BLOCK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def files_sha256(paths: list[Path]) -> str:
    """One file's SHA-256, or for several the SHA-256 of their names and SHA-256s in order (a model's identity)."""
    if len(paths) == 1:
        return sha256_file(paths[0])
    return hashlib.sha256("".join(f"{Path(p).name}:{sha256_file(p)}\n" for p in paths).encode()).hexdigest()
