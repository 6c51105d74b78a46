"""Starting ``spawn`` children that never re-run the caller's script.

A spawned child normally imports the parent's ``__main__`` (as ``__mp_main__``) before running its target, so a
plain script that scores a video at top level, without ``if __name__ == "__main__":``, runs again in every
worker: the worker then fails in its bootstrap and the caller sees a "worker died". Our workers' targets and
arguments all live in importable ``pipeline`` modules and need nothing from ``__main__``, so while one of them
starts, ``start_process`` hides the main module's file and spec from ``multiprocessing``: the child imports only
what its target needs. Safe from scripts, notebooks and ``python -m`` alike.
"""

from __future__ import annotations

import sys
import threading
from multiprocessing.process import BaseProcess

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
