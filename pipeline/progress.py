"""Progress on stderr: a tqdm bar on a terminal, plain periodic lines when stderr is a file or a pipe.

A bar redraws itself with carriage returns several times a second: right on a terminal, thousands of updates of
noise in a log file or a CI transcript. Off a terminal the same tqdm writes whole lines instead, at most one every
``PLAIN_INTERVAL_S`` seconds plus the first and the last, so ``lanp extract ... 2> log`` stays readable and still
says how far a long run is. Every command that shows progress goes through ``progress_bar``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm

PLAIN_INTERVAL_S = 10.0
PLAIN_FORMAT = "{desc}: {n_fmt}/{total_fmt} {unit} ({percentage:.0f}%), {elapsed} elapsed, {remaining} left{postfix}"
_REDRAW = re.compile(r"[\r\n]")


class LineWriter:
    """A file for tqdm that turns its carriage-return redraws into whole lines, each written once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        for part in _REDRAW.split(text):
            line = part.rstrip()
            if line and line != self._last:
                self.stream.write(line + "\n")
                self._last = line

    def flush(self) -> None:
        self.stream.flush()


class PlainProgress(tqdm):
    """tqdm for plain lines: a new postfix or description waits for the next line instead of forcing one."""

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)


def progress_bar(
    iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str, unit: str,
    enabled: bool = True, stream: TextIO | None = None,
) -> tqdm:
    """A tqdm over ``iterable`` (or updated by hand up to ``total``): a bar on a terminal, plain lines every
    ``PLAIN_INTERVAL_S`` seconds elsewhere, nothing when not ``enabled``."""
    stream = sys.stderr if stream is None else stream
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    if stream.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    return PlainProgress(iterable, total=total, desc=desc, unit=unit, file=LineWriter(stream), ascii=True,
                         mininterval=PLAIN_INTERVAL_S, bar_format=PLAIN_FORMAT)
