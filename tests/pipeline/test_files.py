"""The shared file plumbing: atomic writes leave the old file or the new one, JSONL logs survive a torn last line,
file hashes equal hashlib's, and written files get their mode from the umask."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from lanp_vad.pipeline.files import append_jsonl, atomic_write_bytes, read_jsonl, sha256_file


def test_an_atomic_write_replaces_the_file_and_a_failed_one_leaves_the_old_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "result.json"
    atomic_write_bytes(target, b"old")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    with pytest.raises(TypeError):
        atomic_write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"new"
    assert sorted(path.name for path in target.parent.iterdir()) == ["result.json"]


def test_a_jsonl_log_keeps_its_lines_and_skips_a_torn_or_foreign_one(tmp_path: Path) -> None:
    log = tmp_path / "manifest.jsonl"
    assert read_jsonl(log) == []
    append_jsonl(log, {"video_id": "a", "status": "ok"})
    append_jsonl(log, {"video_id": "b", "status": "failed"})
    with log.open("a") as stream:
        stream.write('[1, 2]\n{"video_id": "c", "sta')  # a foreign line, then a line torn by a crash
    assert read_jsonl(log) == [{"video_id": "a", "status": "ok"}, {"video_id": "b", "status": "failed"}]


def test_sha256_of_a_file_larger_than_one_block(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # 2.2 MiB: three blocks
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("umask", [0o022, 0o077], ids=["umask-022", "umask-077"])
def test_atomic_writes_follow_the_umask(tmp_path: Path, umask: int) -> None:
    """Features, results and plots are output files like any tool's: 0666 minus the umask, not mkstemp's 0600."""
    previous = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "out.json", b"{}")
        atomic_write_bytes(tmp_path / "out.json", b"[]")  # replacing keeps the rule
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "out.json").stat().st_mode) == 0o666 & ~umask
    assert [path.name for path in tmp_path.iterdir()] == ["out.json"]
