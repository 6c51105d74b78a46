"""The device scheduler with real threads: one holder at a time, the device's time split fairly between uploads /
jobs and streams however many streams there are, a long job taking a turn per batch (and none while it decodes),
no banked credit after idling, and a waiter whose caller gives up leaving the line."""

from __future__ import annotations

import threading
import time

import pytest

from lanp_vad.pipeline.scoring.result import ScoringCancelled
from lanp_vad.service.scheduler import REQUESTS, STREAMS, DeviceScheduler

BATCH_S = 0.02


class Holders:
    """Counts how many clients are inside a turn at once (the most ever seen)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = self.most = 0

    def work(self, seconds: float) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
        time.sleep(seconds)
        with self.lock:
            self.now -= 1


def _job(scheduler: DeviceScheduler, holders: Holders, stop: threading.Event, batches: list[float],
         decode_s: float = 0.0) -> None:
    """A long job as the inference worker runs one: bound to its client, each batch's forward pass through the
    gate (as the extractor does), its next batch decoding (``decode_s``) off the device."""
    with scheduler.client(REQUESTS, "worker").bound():
        while not stop.is_set():
            with scheduler.gate():
                holders.work(BATCH_S)
            batches.append(time.monotonic())
            time.sleep(decode_s)


def _stream(scheduler: DeviceScheduler, name: str, holders: Holders, stop: threading.Event,
            turns: list[float]) -> None:
    """A stream: a turn per backlog batch, its forward pass (through the gate) inside it."""
    client = scheduler.client(STREAMS, name)
    while not stop.is_set():
        with client.turn(), scheduler.gate():  # the gate lets the holder's own pass through
            holders.work(BATCH_S)
            turns.append(time.monotonic())


def _run(threads: list[threading.Thread], seconds: float, stop: threading.Event) -> None:
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()


@pytest.mark.parametrize("streams", [1, 4])
def test_the_device_is_split_between_requests_and_streams_whatever_their_number(streams: int) -> None:
    scheduler, holders, stop = DeviceScheduler(), Holders(), threading.Event()
    job_batches: list[float] = []
    stream_turns: list[list[float]] = [[] for _ in range(streams)]
    threads = [threading.Thread(target=_job, args=(scheduler, holders, stop, job_batches))]
    threads += [threading.Thread(target=_stream, args=(scheduler, f"s{i}", holders, stop, stream_turns[i]))
                for i in range(streams)]
    _run(threads, 1.5, stop)
    usage = scheduler.snapshot()
    assert holders.most == 1  # never two forward passes at once
    share = usage[REQUESTS]["held_s"] / (usage[REQUESTS]["held_s"] + usage[STREAMS]["held_s"])
    assert 0.35 < share < 0.65, usage  # about half each, not 1 / (streams + 1)
    counts = [len(turns) for turns in stream_turns]
    assert min(counts) >= 0.5 * max(counts) > 0, counts  # the streams share theirs round-robin
    # the job passes the turn after each batch: no stream waits for more than a few batches
    gaps = [b - a for turns in stream_turns for a, b in zip(turns, turns[1:], strict=False)]
    assert max(gaps) < (2 * streams + 4) * BATCH_S * 3, max(gaps)


def test_a_group_alone_gets_the_whole_device_and_banks_no_credit() -> None:
    scheduler, holders, stop = DeviceScheduler(), Holders(), threading.Event()
    turns: list[float] = []
    stream = threading.Thread(target=_stream, args=(scheduler, "alone", holders, stop, turns))
    stream.start()
    time.sleep(0.6)  # the streams use the device alone for a while: no waiting, no idle time
    before_job = len(turns)
    assert before_job >= 0.6 / BATCH_S * 0.5
    job_stop, batches = threading.Event(), []
    job = threading.Thread(target=_job, args=(scheduler, holders, job_stop, batches))
    arrived = time.monotonic()
    job.start()
    time.sleep(0.6)
    job_stop.set()
    job.join(10)
    stop.set()
    stream.join(10)
    during = [t for t in turns if arrived < t < arrived + 0.6]
    # the requests group comes back level, not 0.6 s ahead: the stream keeps about half of the device at once
    assert len(during) >= 0.25 * len(batches) > 0, (len(during), len(batches))
    assert batches[0] - arrived < 5 * BATCH_S


def test_a_job_does_not_hold_the_device_while_its_next_batch_decodes() -> None:
    scheduler, holders, stop = DeviceScheduler(), Holders(), threading.Event()
    batches: list[float] = []
    turns: list[float] = []
    threads = [threading.Thread(target=_job, args=(scheduler, holders, stop, batches, 10 * BATCH_S)),
               threading.Thread(target=_stream, args=(scheduler, "s", holders, stop, turns))]
    _run(threads, 1.0, stop)
    assert holders.most == 1
    # decoding takes 10x the forward pass: the stream runs meanwhile, it does not wait for the decoding
    assert len(turns) > 3 * len(batches) > 0, (len(turns), len(batches))
    assert scheduler.snapshot()[REQUESTS]["held_s"] < 0.5 * 1.0


def test_a_caller_that_gives_up_leaves_the_line() -> None:
    scheduler = DeviceScheduler()
    holder = scheduler.client(STREAMS, "holder")
    gave_up = threading.Event()
    waiter = scheduler.client(REQUESTS, "upload")
    with holder.turn():
        threading.Timer(0.2, gave_up.set).start()
        started = time.monotonic()
        with pytest.raises(ScoringCancelled), waiter.turn(cancel=gave_up.is_set):
            pass
        assert 0.15 < time.monotonic() - started < 2
    with waiter.turn():  # the line is clear: the next turn is granted at once
        pass
    assert scheduler.snapshot()[REQUESTS]["turns"] == 1
