"""The decode worker as a real spawned process: frames through shared slots, heartbeats, typed errors, exit."""

from __future__ import annotations

import math
import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lanp_vad.models.errors import ErrorKind, InternalError, UserError, VideoError
from lanp_vad.pipeline.video import CorruptVideoError, NotAVideoError
from lanp_vad.pipeline.video.worker import (
    WAITING,
    DecoderCrashedError,
    DecodeSettings,
    decode_worker_main,
    error_from_report,
)
from tests.conftest import REPO_ROOT
from tests.videos import write_random_bytes, write_video

SETTINGS = DecodeSettings(frames_per_snippet=4)
REPLY_S = 60.0  # a spawned worker imports PyAV and numpy: seconds on a loaded machine


@dataclass
class Worker:
    """A decode worker process with the main process's ends of its channels."""

    process: Any
    inbox: Any
    free_slots: Any
    receiver: Any
    slots: np.ndarray
    heartbeat: Any

    def receive(self) -> tuple:
        assert self.receiver.poll(REPLY_S), "the worker sent nothing"
        return self.receiver.recv()

    def run(self, task: str, video_id: str, path: Path) -> Iterator[tuple]:
        """Send one task; yield its messages until ``done``, ``info`` or ``error``, giving every slot back."""
        self.inbox.put((task, video_id, str(path)))
        while True:
            message = self.receive()
            assert message[1] == video_id
            if message[0] == "chunk":
                first, slot, shape = message[2:]
                frames = self.slots[slot, : int(np.prod(shape))].reshape(shape).copy()
                self.free_slots.put(slot)
                message = ("frames", video_id, first, frames)
            elif message[0] == "inline":
                message = ("frames", video_id, message[2], message[3])
            yield message
            if message[0] in ("done", "info", "error"):
                return


def start_worker(settings: DecodeSettings, *, slot_bytes: int = 1 << 20, slots: int = 2, chunk: int = 2) -> Worker:
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    shared = context.RawArray("B", slots * slot_bytes)
    inbox, free_slots = context.Queue(), context.Queue()
    for slot in range(slots):
        free_slots.put(slot)
    heartbeat = context.RawValue("d", 0.0)
    process = context.Process(
        target=decode_worker_main,
        args=(settings, inbox, free_slots, sender, shared, slot_bytes, heartbeat, chunk),
        daemon=True,
    )
    process.start()
    sender.close()
    view = np.frombuffer(shared, dtype=np.uint8).reshape(slots, slot_bytes)
    return Worker(process, inbox, free_slots, receiver, view, heartbeat)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    started = start_worker(SETTINGS)
    yield started
    started.inbox.put(None)
    started.process.join(REPLY_S)
    assert started.process.exitcode == 0, "the worker did not stop when told to"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("worker") / "clip.mp4", num_frames=37, width=64, height=48)


def expected_chunks(settings: DecodeSettings, path: Path, per_chunk: int) -> list[tuple[int, np.ndarray]]:
    """What the worker must send: the same settings' chunks decoded in this process."""
    reader, plan = settings.open(path)
    with reader:
        return list(settings.iter_chunks(reader, plan, per_chunk))


def test_decode_sends_the_header_then_every_chunk_through_the_slots(worker: Worker, clip: Path) -> None:
    messages = list(worker.run("decode", "clip", clip))
    kinds = [message[0] for message in messages]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"frames"}
    info, plan = messages[0][2:]
    assert (info.num_frames, info.width, info.height, plan.num_snippets) == (37, 64, 48, 3)
    received = [(message[2], message[3]) for message in messages[1:-1]]
    expected = expected_chunks(SETTINGS, clip, 2)
    assert [first for first, _ in received] == [first for first, _ in expected] == [0, 2]
    for (_, got), (_, want) in zip(received, expected, strict=True):
        assert got.shape[1:] == (4, 48, 64, 3)
        np.testing.assert_array_equal(got, want)


def test_a_chunk_too_big_for_a_slot_comes_inline(tmp_path: Path, clip: Path) -> None:
    small = start_worker(SETTINGS, slot_bytes=1000)  # not even one frame fits
    try:
        messages = list(small.run("decode", "clip", clip))
    finally:
        small.process.kill()
    frames = np.concatenate([message[3] for message in messages if message[0] == "frames"])
    np.testing.assert_array_equal(frames, np.concatenate([chunk for _, chunk in expected_chunks(SETTINGS, clip, 1)]))


def test_probe_sends_the_header_only(worker: Worker, clip: Path) -> None:
    [message] = list(worker.run("probe", "p1", clip))
    assert message[0] == "info" and (message[2].num_frames, message[2].fps) == (37, 10.0)


def test_errors_come_back_typed_and_the_worker_serves_on(worker: Worker, tmp_path: Path, clip: Path) -> None:
    [bad] = list(worker.run("decode", "bad", write_random_bytes(tmp_path / "random.mp4")))
    assert bad[:3] == ("error", "bad", "not_video") and "random.mp4" in bad[3]
    assert isinstance(error_from_report(*bad[2:]), NotAVideoError)
    [gone] = list(worker.run("probe", "gone", tmp_path / "missing.mp4"))
    assert gone[2] == "not_found" and isinstance(error_from_report(*gone[2:]), UserError)
    assert list(worker.run("decode", "again", clip))[-1][0] == "done"


def test_heartbeat_waits_between_videos_and_beats_while_decoding(tmp_path: Path) -> None:
    long_clip = write_video(tmp_path / "long.mp4", num_frames=64, width=1280, height=720)
    beating = start_worker(SETTINGS, slot_bytes=16 << 20, slots=1, chunk=1)
    try:
        assert list(beating.run("probe", "warm-up", long_clip))[0][0] == "info"
        _wait_until(lambda: beating.heartbeat.value == WAITING, "an idle worker must not look stalled")
        beating.inbox.put(("decode", "long", str(long_clip)))
        assert beating.receive()[0] == "start"
        assert beating.receive()[0] == "chunk"  # the only slot is now taken: the worker waits for it, not stalled
        _wait_until(lambda: beating.heartbeat.value == WAITING, "a worker waiting for a slot must not look stalled")
        time.sleep(1.0)
        assert beating.heartbeat.value == WAITING and not beating.receiver.poll(0)
        freed = time.monotonic()
        beating.free_slots.put(0)  # the worker sends the chunk, then decodes the next one: beating meanwhile
        beats: list[float] = []  # read once per poll: the worker may go back to WAITING right after a beat
        _wait_until(lambda: math.isfinite(beats.append(beating.heartbeat.value) or beats[-1]),
                    "a decoding worker must beat")
        assert freed <= beats[-1] <= time.monotonic()  # the parent's clock, as its stall check needs
    finally:
        beating.process.kill()


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + REPLY_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_the_worker_exits_when_its_parent_dies(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from tests.pipeline.video.test_worker import SETTINGS, start_worker

        if __name__ == "__main__":
            worker = start_worker(SETTINGS)
            print(worker.process.pid, flush=True)
            sys.stdin.readline()
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        worker_pid = int(parent.stdout.readline())
        parent.kill()
        parent.wait(REPLY_S)
        deadline = time.monotonic() + 30
        while _alive(worker_pid):
            assert time.monotonic() < deadline, "the orphaned worker did not exit"
            time.sleep(0.2)
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_reports_rebuild_the_right_error_family() -> None:
    assert isinstance(error_from_report("corrupt", "x"), CorruptVideoError)
    crashed = error_from_report(ErrorKind.WORKER_CRASHED, "the decoding worker died")
    assert isinstance(crashed, DecoderCrashedError) and isinstance(crashed, InternalError)
    assert not isinstance(crashed, VideoError)
    assert error_from_report("too_short", "x").kind == "too_short" and isinstance(
        error_from_report("too_short", "x"), VideoError
    )
    bug = error_from_report("internal", "ZeroDivisionError: ...")
    assert isinstance(bug, InternalError) and bug.kind == "internal"
    assert error_from_report("no-such-kind", "x").kind == "internal"


def test_settings_are_checked_where_they_are_made() -> None:
    with pytest.raises(UserError, match="frames per snippet"):
        DecodeSettings(frames_per_snippet=17)
