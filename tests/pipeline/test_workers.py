"""The killable-worker supervisor with real spawned processes: round trips, deadlines, stalls, crashes, cancels,
per-worker resources, and workers that die with their parent (kill -9), from the main thread and from another."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanp_vad.pipeline.workers import Ended, Message, Supervisor, WorkerLink
from tests.conftest import REPO_ROOT

# --- worker targets (module level: spawn imports them by name) ---------------------------------------------------


def echo(link: WorkerLink, prefix: str) -> None:
    for task in link.tasks():
        link.send(f"{prefix}{task}")


def sleep_then_answer(link: WorkerLink) -> None:
    for seconds in link.tasks():
        time.sleep(seconds)
        link.send(f"slept {seconds}")


def beat_then_hang(link: WorkerLink) -> None:
    for seconds in link.tasks():
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            link.beat()
            time.sleep(0.05)
        time.sleep(600)


def crash(link: WorkerLink) -> None:
    for code in link.tasks():
        os._exit(code)


def store(link: WorkerLink, shared: object) -> None:
    for value in link.tasks():
        shared.value = value  # type: ignore[attr-defined]
        link.send("stored")


# --- helpers -----------------------------------------------------------------------------------------------------


def collect(pool: Supervisor, count: int, limit_s: float = 60) -> list[Message | Ended]:
    events: list[Message | Ended] = []
    deadline = time.monotonic() + limit_s
    while len(events) < count and time.monotonic() < deadline:
        events.extend(pool.events(0.1))
    assert len(events) >= count, f"only {events} within {limit_s} s"
    return events


@pytest.fixture
def pools() -> Iterator[list[Supervisor]]:
    started: list[Supervisor] = []
    yield started
    for pool in started:
        pool.close()


def test_tasks_round_trip_and_close_stops_idle_workers(pools: list[Supervisor]) -> None:
    pool = Supervisor(echo, ("got ",), size=2)
    pools.append(pool)
    first, second = pool.workers
    first.submit(1)
    second.submit(2)
    events = collect(pool, 2)
    assert sorted((event.worker.key, event.payload) for event in events) == [(0, "got 1"), (1, "got 2")]
    for event in events:
        assert event.worker.finished() in (1, 2)
    processes = [worker.process for worker in pool.workers]
    pool.close()
    assert [process.exitcode for process in processes] == [0, 0]


def test_a_task_past_its_deadline_is_killed_and_the_queued_task_moves_to_the_replacement(
    pools: list[Supervisor],
) -> None:
    pool = Supervisor(sleep_then_answer, size=1, deadline_s=1.0)
    pools.append(pool)
    (worker,) = pool.workers
    worker.submit(600)
    worker.submit(0)
    ended, answer = collect(pool, 2)
    assert isinstance(ended, Ended) and ended.reason == "overdue" and ended.task == 600
    assert 1.0 <= ended.seconds < 30 and "worker killed" in ended.describe()
    assert not worker.process.is_alive() and ended.replacement is pool.workers[0]
    assert isinstance(answer, Message) and answer.worker is ended.replacement and answer.payload == "slept 0"


def test_a_worker_is_stalled_only_once_its_heartbeat_stops(pools: list[Supervisor]) -> None:
    pool = Supervisor(beat_then_hang, size=1, stall_s=0.5)
    pools.append(pool)
    started = time.monotonic()
    pool.workers[0].submit(2.0)  # beats for 2 s, then goes silent
    (ended,) = collect(pool, 1)
    assert isinstance(ended, Ended) and ended.reason == "stalled" and "no progress" in ended.describe()
    assert time.monotonic() - started >= 2.0, "killed while it was still beating"


def test_a_crash_is_reported_with_its_task_and_exit_code(pools: list[Supervisor]) -> None:
    pool = Supervisor(crash, size=1)
    pools.append(pool)
    pool.workers[0].submit(3)
    (ended,) = collect(pool, 1)
    assert isinstance(ended, Ended) and ended.reason == "crashed" and ended.task == 3 and ended.exitcode == 3
    assert "exit code 3" in ended.describe() and pool.workers[0].process.is_alive()


def test_cancel_kills_a_busy_worker_at_once(pools: list[Supervisor]) -> None:
    pool = Supervisor(sleep_then_answer, size=1)
    pools.append(pool)
    (worker,) = pool.workers
    worker.submit(600)
    started = time.monotonic()
    ended = pool.cancel(worker)
    assert ended.reason == "canceled" and ended.task == 600 and time.monotonic() - started < 10
    assert not worker.process.is_alive() and pool.workers[0] is ended.replacement


def test_each_worker_gets_its_own_fresh_resources(pools: list[Supervisor]) -> None:
    made: list[object] = []

    def per_worker(context: object) -> tuple[tuple[object, ...], object]:
        shared = context.RawValue("i", 0)  # type: ignore[attr-defined]
        made.append(shared)
        return (shared,), shared

    pool = Supervisor(store, size=2, per_worker=per_worker)
    pools.append(pool)
    for value, worker in zip((7, 9), pool.workers, strict=True):
        worker.submit(value)
    collect(pool, 2)
    assert [worker.resource.value for worker in pool.workers] == [7, 9] and len(made) == 2
    pool.cancel(pool.workers[0])
    assert len(made) == 3 and pool.workers[0].resource.value == 0


PARENT = """
import sys, threading, time
from lanp_vad.pipeline.workers import Supervisor
from tests.pipeline.test_workers import sleep_then_answer

pools = []

def start():
    pools.append(Supervisor(sleep_then_answer, size=1))
    worker = pools[0].workers[0]
    worker.submit(600)
    while worker.working_since is None:  # the worker has started and is inside its task
        time.sleep(0.01)
    print(worker.process.pid, flush=True)

if sys.argv[1] == "thread":  # no kernel signal from a non-main thread: the watchdog alone must do it
    thread = threading.Thread(target=start)
    thread.start()
    thread.join()
else:
    start()
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("started_from", ["main", "thread"])
def test_a_busy_worker_exits_within_a_second_of_kill_9_of_its_parent(started_from: str) -> None:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT), started_from], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True, env=environment)
    try:
        worker_pid = int(parent.stdout.readline())  # type: ignore[union-attr]
        assert _alive(worker_pid)
        os.kill(parent.pid, signal.SIGKILL)
        killed = time.monotonic()
        parent.wait()
        while _alive(worker_pid) and time.monotonic() - killed < 10:
            time.sleep(0.02)
        lived_s = time.monotonic() - killed
        assert not _alive(worker_pid) and lived_s < 1.0, f"the worker outlived its parent by {lived_s:.2f} s"
    finally:
        parent.kill()
