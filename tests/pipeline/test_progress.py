"""Progress on stderr: a redrawn bar on a terminal, whole periodic lines in a file or a pipe."""

from __future__ import annotations

import fcntl
import io
import os
import struct
import termios
import time
from pathlib import Path

import pytest

from lanp_vad.pipeline import progress
from lanp_vad.pipeline.research.synthetic import write_synthetic_features
from tests.cli.test_train_cli import FAST, _lanp


def _run(stream: io.TextIOBase, steps: int = 40, pause_s: float = 0.01) -> None:
    with progress.progress_bar(total=steps, desc="extract", unit="video", stream=stream) as bar:
        for _ in range(steps):
            time.sleep(pause_s)
            bar.set_postfix(failed=0)  # forced a redraw per step before: one log line per update
            bar.update(1)


def test_a_file_gets_whole_lines_at_most_one_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress, "PLAIN_INTERVAL_S", 0.1)
    stream = io.StringIO()
    _run(stream)  # 40 updates over ~0.4 s
    text = stream.getvalue()
    lines = text.splitlines()
    assert "\r" not in text
    assert lines[0].startswith("extract: 0/40 video (0%)") and lines[-1].startswith("extract: 40/40 video (100%)")
    assert 2 <= len(lines) <= 8, lines  # the first, one every 0.1 s, the last: not one per update


def test_a_terminal_gets_the_redrawn_bar() -> None:
    leader, follower = os.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty has 0 columns
    with os.fdopen(follower, "w") as terminal:
        assert terminal.isatty()
        _run(terminal, steps=5, pause_s=0)
    chunks = []  # one read may return only part of what the bar wrote: read until the closed follower says so
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the follower is closed and everything was read
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    written = b"".join(chunks).decode()
    assert "\r" in written and "5/5" in written


def test_disabled_progress_writes_nothing() -> None:
    stream = io.StringIO()
    with progress.progress_bar(total=3, desc="x", unit="video", enabled=False, stream=stream) as bar:
        bar.update(3)
    assert stream.getvalue() == ""


def test_lanp_train_into_a_pipe_prints_plain_lines(tmp_path: Path) -> None:
    """A command's progress with stderr captured (a pipe, as in CI or ``2> log``): no carriage returns."""
    archive = write_synthetic_features(tmp_path / "feats", scale="tiny", dim=24, salience=6.0, seed=3)
    trained = _lanp("train", "--features", archive, "--out", tmp_path / "model", *FAST)
    assert trained.returncode == 0, trained.stderr
    assert "\r" not in trained.stderr
    assert "training: 0/30 epoch (0%)" in trained.stderr and "training: 30/30 epoch (100%)" in trained.stderr
