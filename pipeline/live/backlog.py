"""The bounded hand-over between the reader (decoding as the stream plays) and inference (as fast as it can).

The reader never waits: when more than ``capacity`` snippets with pixels are waiting, the oldest one loses its
pixels (it is *dropped*: it stays in line, without its frames, so inference can still account for its frames and
times). Dropping the oldest keeps the scores close to now when inference falls behind, and memory stays at
``capacity`` snippets whatever the lag. Session ends are never dropped.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from lanp_vad.pipeline.live.assembler import SessionEnd, Snippet


@dataclass(frozen=True)
class Notice:
    """A record for the output that must keep its place among the scores (connected, reconnecting, ...)."""

    record: dict[str, Any]


Item = Snippet | SessionEnd | Notice


class Backlog:
    """A FIFO of snippets and session ends that drops the oldest snippet's pixels beyond ``capacity``."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"the backlog must hold at least one snippet, got {capacity}")
        self.capacity = capacity
        self.items: deque[Item] = deque()
        self.waiting = 0  # snippets in line that still have their pixels
        self.dropped = 0
        self.closed = False
        self.condition = threading.Condition()

    def put(self, item: Item) -> None:
        with self.condition:
            self.items.append(item)
            if isinstance(item, Snippet) and not item.dropped:
                self.waiting += 1
                if self.waiting > self.capacity:
                    oldest = next(i for i in self.items if isinstance(i, Snippet) and not i.dropped)
                    oldest.drop()
                    self.waiting -= 1
                    self.dropped += 1
            self.condition.notify()

    def close(self) -> None:
        """No more items will come; ``take`` returns what is left, then an empty list."""
        with self.condition:
            self.closed = True
            self.condition.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` for an item (or the close); whether an item is waiting."""
        with self.condition:
            self.condition.wait_for(lambda: self.items or self.closed, timeout)
            return bool(self.items)

    def take(self, limit: int, timeout: float | None = None) -> list[Item]:
        """Up to ``limit`` items in order (waiting up to ``timeout`` for the first); [] when closed and empty."""
        with self.condition:
            self.condition.wait_for(lambda: self.items or self.closed, timeout)
            taken: list[Item] = []
            while self.items and len(taken) < limit:
                item = self.items.popleft()
                if isinstance(item, Snippet) and not item.dropped:
                    self.waiting -= 1
                taken.append(item)
            return taken

    def __len__(self) -> int:
        with self.condition:
            return self.waiting
