"""Killable worker processes: one small supervisor for every pool of ``spawn`` workers in the product.

Why processes: a video can hang a decoder inside native code or crash it, and the only reliable cure is a separate
process that the caller kills. ``Supervisor`` starts ``size`` spawn processes that run ``target(link, *args)``,
hands them tasks over a private pipe each, and watches every worker: a task past ``deadline_s`` (counted from when
the worker took it, so a worker's start-up is not charged to its first task), a worker whose heartbeat is older than
``stall_s``, or one the caller cancels is killed; one that dies is noticed; either way a fresh worker takes its
place (its queued tasks move over) and an ``Ended`` event names the task it took down, so the caller can record it
and go on.

Every worker dies with its parent, within about a second, even while busy inside native code: on Linux the kernel
sends it SIGKILL when the parent goes (``prctl(PR_SET_PDEATHSIG)``; set only when the supervisor runs on the main
thread, since the signal follows the *thread* that started the child), and everywhere a watchdog thread in the
worker exits when its parent process is gone. Both are armed before the worker imports its target's module (torch,
say), so a parent killed during a slow start-up leaves nothing behind either.

Worker side (a module-level function, so that spawn can import it)::

    def target(link: WorkerLink, *args):
        for task in link.tasks():       # ends when the parent says stop or goes away
            link.send(work_on(task))    # sending also beats the heartbeat

Parent side::

    pool = Supervisor(target, args, size=2, deadline_s=60.0)
    pool.workers[0].submit(task)
    for event in pool.events(timeout_s=0.2):   # Message(worker, payload) or Ended(...)
        ...
    pool.close()

Pure standard library (no torch): importable from any room, cheap in every child.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Literal

PR_SET_PDEATHSIG = 1
"""``prctl`` option (linux/prctl.h): the signal this process gets when its parent thread exits."""
PARENT_POLL_S = 0.25
"""How often a worker's watchdog thread checks that its parent is alive."""
EXIT_ORPHANED = 75
"""Exit status of a worker that stopped because its parent was gone."""
WAITING = float("inf")
"""Heartbeat value of a worker that waits (for a task, a free buffer): never a stall."""
STOP = None
"""The task that tells a worker to finish."""
JOIN_GRACE_S = 5.0
HEARTBEAT, TAKEN, TAKEN_AT = range(3)
"""Slots of a worker's shared progress array: last beat (or WAITING), tasks taken so far, when it took the last."""

EndReason = Literal["crashed", "overdue", "stalled", "canceled"]
PerWorker = Callable[[Any], tuple[tuple[Any, ...], Any]]
"""``per_worker(context) -> (extra child args, parent-side handle)``: resources each worker owns (shared memory,
extra queues), made afresh for every replacement so that killing one worker corrupts nothing shared."""


# --- the worker's side --------------------------------------------------------------------------------------------


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(PARENT_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(EXIT_ORPHANED)


def bind_to_parent(parent_pid: int, *, kernel_signal: bool) -> None:
    """Make this process exit when ``parent_pid`` dies: a kernel SIGKILL (Linux) and a watchdog thread."""
    if kernel_signal and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no usable libc: the watchdog below still applies
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(EXIT_ORPHANED)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watchdog", daemon=True).start()


class WorkerLink:
    """A worker's end of its supervisor: tasks in, messages out, and the heartbeat the supervisor watches."""

    def __init__(self, connection: Connection, progress: Any):
        self._connection = connection
        self._progress = progress

    def tasks(self) -> Iterator[Any]:
        """The tasks sent to this worker, until ``STOP`` or until the parent's end of the pipe closes."""
        while True:
            self.waiting()
            try:
                task = self._connection.recv()
            except (EOFError, OSError):
                return
            if task is STOP:
                return
            self._progress[TAKEN_AT] = time.monotonic()
            self._progress[TAKEN] += 1
            self.beat()
            yield task

    def send(self, message: Any) -> None:
        self.beat()
        self._connection.send(message)

    def beat(self) -> None:
        """Say "still making progress" (the supervisor kills a worker silent for longer than ``stall_s``)."""
        self._progress[HEARTBEAT] = time.monotonic()

    def waiting(self) -> None:
        """Say "waiting, not working": no stall is counted until the next ``beat``."""
        self._progress[HEARTBEAT] = WAITING


def _worker_entry(target: str, parent_pid: int, kernel_signal: bool, connection: Connection, progress: Any,
                  args: tuple[Any, ...]) -> None:
    bind_to_parent(parent_pid, kernel_signal=kernel_signal)
    module, _, name = target.partition(":")
    getattr(importlib.import_module(module), name)(WorkerLink(connection, progress), *args)


# --- the supervisor's side ----------------------------------------------------------------------------------------


@dataclass(eq=False)
class Worker:
    """One worker process as its supervisor sees it; ``assigned`` holds the tasks sent and not yet finished."""

    key: int
    process: Any
    connection: Connection
    progress: Any
    resource: Any = None
    assigned: deque[Any] = field(default_factory=deque)
    finished_count: int = 0
    since: float = field(default_factory=time.monotonic)

    @property
    def task(self) -> Any:
        """The task being worked on (the oldest assigned), or None when idle."""
        return self.assigned[0] if self.assigned else None

    @property
    def working_since(self) -> float | None:
        """When the worker took its current task; None while idle or before it has taken it (still starting)."""
        if self.assigned and self.progress[TAKEN] > self.finished_count:
            return float(self.progress[TAKEN_AT])
        return None

    def submit(self, task: Any) -> None:
        if not self.assigned:
            self.since = time.monotonic()
        self.assigned.append(task)
        self.connection.send(task)

    def finished(self) -> Any:
        """Mark the current task done; returns it."""
        self.finished_count += 1
        self.since = time.monotonic()
        return self.assigned.popleft()


@dataclass(frozen=True)
class Message:
    """Something a worker sent."""

    worker: Worker
    payload: Any


@dataclass(frozen=True)
class Ended:
    """A worker that was killed or died; ``task`` is the one it was on (None when idle), ``replacement`` its
    successor, which already holds the tasks that were queued behind it."""

    worker: Worker
    reason: EndReason
    task: Any
    exitcode: int | None
    seconds: float
    replacement: Worker | None

    def describe(self) -> str:
        if self.reason == "crashed":
            return f"the worker process died (exit code {self.exitcode})"
        if self.reason == "canceled":
            return "canceled: the worker was stopped"
        return f"no {'progress' if self.reason == 'stalled' else 'result'} after {self.seconds:.0f} s: worker killed"


# --- starting a child without re-running the caller's script ----------------------------------------------------
# A spawned child normally imports the parent's ``__main__`` (as ``__mp_main__``) before running its target, so a
# plain script that scores a video at top level, without ``if __name__ == "__main__":``, runs again in every
# worker: the worker fails in its bootstrap and the caller sees "the worker died". Our workers' targets and
# arguments live in importable modules and need nothing from ``__main__``, so while one starts, ``start_process``
# hides the main module's file and spec from multiprocessing: the child imports only what its target needs.

_MISSING = object()
_lock = threading.Lock()


def start_process(process: BaseProcess) -> None:
    """``process.start()`` without the child importing the parent's ``__main__`` module."""
    main = sys.modules.get("__main__")
    if main is None:
        process.start()
        return
    with _lock:
        saved = {name: main.__dict__.get(name, _MISSING) for name in ("__file__", "__spec__")}
        main.__dict__.pop("__file__", None)
        main.__dict__["__spec__"] = None
        try:
            process.start()
        finally:
            for name, value in saved.items():
                if value is _MISSING:
                    main.__dict__.pop(name, None)
                else:
                    main.__dict__[name] = value


class Supervisor:
    """``size`` killable spawn workers running ``target(link, *args)`` (see the module docstring)."""

    def __init__(self, target: Callable[..., None], args: tuple[Any, ...] = (), *, size: int,
                 deadline_s: float | None = None, stall_s: float | None = None, per_worker: PerWorker | None = None,
                 daemon: bool = True, name: str = "worker"):
        if size < 1:
            raise ValueError(f"a supervisor needs at least one worker, got {size}")
        self.context = multiprocessing.get_context("spawn")
        self.deadline_s = deadline_s
        self.stall_s = stall_s
        # by name: the worker arms its parent-death signal before it imports the target's module
        self._target = f"{target.__module__}:{target.__qualname__}"
        self._args, self._per_worker = args, per_worker
        self._daemon, self._name = daemon, name
        # PR_SET_PDEATHSIG fires when the *thread* that started the child ends: arm it only from the main thread
        self._kernel_signal = threading.current_thread() is threading.main_thread()
        self._started = 0
        self.workers: list[Worker] = [self._start() for _ in range(size)]

    def _start(self) -> Worker:
        key, self._started = self._started, self._started + 1
        ours, theirs = self.context.Pipe(duplex=True)
        progress = self.context.RawArray("d", [WAITING, 0.0, 0.0])
        extra, resource = self._per_worker(self.context) if self._per_worker else ((), None)
        process = self.context.Process(
            target=_worker_entry, name=f"{self._name}-{key}", daemon=self._daemon,
            args=(self._target, os.getpid(), self._kernel_signal, theirs, progress, (*self._args, *extra)),
        )
        start_process(process)
        theirs.close()
        return Worker(key, process, ours, progress, resource)

    @property
    def busy(self) -> bool:
        return any(worker.assigned for worker in self.workers)

    def idle_workers(self) -> list[Worker]:
        return [worker for worker in self.workers if not worker.assigned]

    def events(self, timeout_s: float) -> list[Message | Ended]:
        """What happened within ``timeout_s``: messages received, and workers that died or were killed for
        overrunning (each already replaced)."""
        ready = wait([worker.connection for worker in self.workers], timeout_s)
        events: list[Message | Ended] = []
        for worker in list(self.workers):
            if worker.connection in ready:
                try:
                    while worker.connection.poll():
                        events.append(Message(worker, worker.connection.recv()))
                except (EOFError, OSError):
                    events.append(self._end(worker, "crashed"))
                    continue
            reason = self._overrun(worker)
            if reason is not None:
                events.append(self._end(worker, reason))
            elif not worker.process.is_alive():
                events.append(self._end(worker, "crashed"))
        return events

    def _overrun(self, worker: Worker) -> EndReason | None:
        started = worker.working_since
        if started is None:
            return None
        now = time.monotonic()
        if self.deadline_s is not None and now - started > self.deadline_s:
            return "overdue"
        if self.stall_s is not None and now - max(started, worker.progress[HEARTBEAT]) > self.stall_s:
            return "stalled"
        return None

    def cancel(self, worker: Worker) -> Ended:
        """Kill ``worker`` now (its task is abandoned) and start its replacement."""
        return self._end(worker, "canceled")

    def _end(self, worker: Worker, reason: EndReason) -> Ended:
        seconds = time.monotonic() - (worker.working_since or worker.since)
        self._stop(worker, kill=True)
        replacement = self._start()
        self.workers[self.workers.index(worker)] = replacement
        task = worker.assigned.popleft() if worker.assigned else None
        for queued in worker.assigned:
            replacement.submit(queued)
        return Ended(worker, reason, task, worker.process.exitcode, seconds, replacement)

    def _stop(self, worker: Worker, *, kill: bool) -> None:
        self._signal(worker, kill=kill)
        self._reap(worker)

    @staticmethod
    def _signal(worker: Worker, *, kill: bool) -> None:
        if kill:
            worker.process.kill()
            return
        with contextlib.suppress(OSError):  # already gone
            worker.connection.send(STOP)

    @staticmethod
    def _reap(worker: Worker) -> None:
        worker.process.join(timeout=JOIN_GRACE_S)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.connection.close()

    def close(self) -> None:
        """Stop every worker: idle ones are asked to finish, busy ones are killed (their work is abandoned)."""
        for worker in self.workers:
            self._signal(worker, kill=bool(worker.assigned))
        for worker in self.workers:
            self._reap(worker)
        self.workers = []
