"""The one device, shared fairly: every forward pass of the service (a live stream's snippet batch, an upload's or a
job's snippet batch) runs while its client holds the device's *turn*, and ``DeviceScheduler`` decides who holds
it next.

Clients belong to groups: ``requests`` (the inference worker, which runs uploads and jobs one at a time) and
``streams`` (one client per watched stream). When the turn is free it goes to the waiting group that has held the
device for the fewest seconds, and within a group to the client that has waited longest. So when uploads and
streams both want the device each group gets about half of its time, however many streams there are (many streams
cannot starve ``POST /score``, and a long job cannot starve the streams); the streams share their half
round-robin; a group alone gets all of it (the device never idles while someone waits). A group that was idle
does not bank credit: it comes back level with the least-served busy group.

A turn is one forward pass. The service sets ``gate`` as the extractor's ``forward_gate``: a thread bound to a
client (``DeviceClient.bound``: the inference worker while it scores a video) takes a turn for each backbone batch
of that video and lets go while its next batch decodes; a stream holds its turn (``DeviceClient.turn``) for the
snippets waiting in its backlog, its forward passes inside it. A long job therefore delays a stream's snippets by
about one batch, never its whole duration; meanwhile the stream's bounded backlog drops its oldest snippets as
before (reported with their lag).
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from lanp_vad.models.errors import InternalError
from lanp_vad.pipeline.scoring.result import ScoringCancelled

REQUESTS, STREAMS = "requests", "streams"
GROUPS = (REQUESTS, STREAMS)
CANCEL_POLL_S = 0.1
"""How often a client waiting for the turn checks whether its caller gave up."""

Observer = Callable[[str, float, float], None]
"""Told ``(group, seconds waited, seconds held)`` after every turn (the service's metrics)."""


@dataclass
class GroupUsage:
    """What one group got of the device: turns, seconds held and seconds its clients waited."""

    turns: int = 0
    held_s: float = 0.0
    waited_s: float = 0.0


@dataclass(eq=False)
class _Waiter:
    client: DeviceClient
    since: float
    order: int


@dataclass
class _Holder:
    client: DeviceClient
    since: float
    waited_s: float
    held_s: float = field(default=0.0)


class DeviceScheduler:
    """Grants the device's turn to one client at a time, fairly between groups (see the module docstring)."""

    def __init__(self, observe: Observer | None = None):
        self._condition = threading.Condition()
        self._holder: _Holder | None = None
        self._waiting: list[_Waiter] = []
        self._virtual: dict[str, float] = dict.fromkeys(GROUPS, 0.0)  # seconds held, lifted when a group returns
        self._order = itertools.count()
        self._observe = observe
        self.usage: dict[str, GroupUsage] = {group: GroupUsage() for group in GROUPS}
        self._bound = threading.local()  # the client (and its cancel) of the calling thread
        self._unbound = DeviceClient(self, REQUESTS, "unbound thread")

    def gate(self) -> AbstractContextManager[object]:
        """What the extractor enters around a forward pass: the calling thread's client takes a turn for it (the
        pass runs at once when that client holds the turn already; a thread bound to no client uses the
        ``requests`` group's default one)."""
        client = getattr(self._bound, "client", None) or self._unbound
        holder = self._holder
        if holder is not None and holder.client is client:
            return contextlib.nullcontext()
        return client.turn(getattr(self._bound, "cancel", None))

    def client(self, group: str, name: str) -> DeviceClient:
        if group not in GROUPS:
            raise InternalError(f"unknown device group {group!r} (one of {', '.join(GROUPS)})")
        return DeviceClient(self, group, name)

    def snapshot(self) -> dict[str, dict[str, float]]:
        """Per group: turns, seconds held and seconds waited so far (for /metrics and the benchmark)."""
        with self._condition:
            return {group: vars(usage).copy() for group, usage in self.usage.items()}

    # ------------------------------------------------------------------------------------------ internals

    def _active(self, group: str) -> bool:
        return (self._holder is not None and self._holder.client.group == group) or any(
            waiter.client.group == group for waiter in self._waiting)

    def _join(self, client: DeviceClient) -> _Waiter:
        """Put ``client`` in line (a group coming back from idle starts level with the least-served busy one)."""
        if not self._active(client.group):
            busy = [self._virtual[group] for group in GROUPS if group != client.group and self._active(group)]
            if busy:
                self._virtual[client.group] = max(self._virtual[client.group], min(busy))
        waiter = _Waiter(client, time.monotonic(), next(self._order))
        self._waiting.append(waiter)
        return waiter

    def _grant(self) -> None:
        """Hand a free turn to the next waiter: the least-served group, in it the longest waiting client."""
        if self._holder is not None or not self._waiting:
            return
        first = min(self._waiting, key=lambda w: (self._virtual[w.client.group], w.order))
        now = time.monotonic()
        self._waiting.remove(first)
        self._holder = _Holder(first.client, now, now - first.since)
        self._condition.notify_all()

    def _charge(self, now: float) -> None:
        """Count the holder's time so far to its group."""
        holder = self._holder
        assert holder is not None
        self._virtual[holder.client.group] += now - holder.since
        holder.held_s += now - holder.since
        holder.since = now

    def _end_turn(self) -> None:
        holder = self._holder
        assert holder is not None
        self._charge(time.monotonic())
        usage = self.usage[holder.client.group]
        usage.turns += 1
        usage.held_s += holder.held_s
        usage.waited_s += holder.waited_s
        self._holder = None
        if self._observe is not None:
            self._observe(holder.client.group, holder.waited_s, holder.held_s)

    def _wait_for_turn(self, waiter: _Waiter, cancel: Callable[[], bool] | None) -> None:
        client = waiter.client
        while self._holder is None or self._holder.client is not client:
            if cancel is not None and cancel():
                self._waiting.remove(waiter)
                self._grant()
                raise ScoringCancelled("canceled while waiting for the device")
            self._condition.wait(CANCEL_POLL_S if cancel is not None else None)

    def _acquire(self, client: DeviceClient, cancel: Callable[[], bool] | None) -> None:
        with self._condition:
            if self._holder is not None and self._holder.client is client:
                raise InternalError(f"{client.name} already holds the device")
            waiter = self._join(client)
            self._grant()
            self._wait_for_turn(waiter, cancel)

    def _release(self, client: DeviceClient) -> None:
        with self._condition:
            if self._holder is not None and self._holder.client is client:
                self._end_turn()
            self._waiting = [waiter for waiter in self._waiting if waiter.client is not client]
            self._grant()


class DeviceClient:
    """One user of the device (the inference worker, or one stream): ``with client.turn(): <forward passes>``,
    or ``with client.bound(): <code whose forward passes go through the gate>``."""

    def __init__(self, scheduler: DeviceScheduler, group: str, name: str):
        self.scheduler = scheduler
        self.group = group
        self.name = name

    @contextmanager
    def turn(self, cancel: Callable[[], bool] | None = None) -> Iterator[None]:
        """Hold the device for the block (the forward passes of this thread inside it run at once); waiting for
        it ends with ``ScoringCancelled`` once ``cancel()`` is true."""
        self.scheduler._acquire(self, cancel)
        try:
            with self.bound(cancel):
                yield
        finally:
            self.scheduler._release(self)

    @contextmanager
    def bound(self, cancel: Callable[[], bool] | None = None) -> Iterator[None]:
        """Inside the block, the forward passes of this thread take their turns as this client (``gate``)."""
        binding = self.scheduler._bound
        before = getattr(binding, "client", None), getattr(binding, "cancel", None)
        binding.client, binding.cancel = self, cancel
        try:
            yield
        finally:
            binding.client, binding.cancel = before
