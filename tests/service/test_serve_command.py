"""``lanp serve`` refuses what it cannot serve in one line with exit status 2, before opening a port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT


def serve(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lanp_vad", "serve", "--port", "1", *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env,
    )


@pytest.mark.parametrize("setup", ["missing", "garbage"])
def test_a_bad_model_directory_is_one_line_and_exit_2(tmp_path: Path, setup: str) -> None:
    model = tmp_path / "model"
    if setup != "missing":
        model.mkdir()
    if setup == "garbage":
        for name in ("model.safetensors", "feature_spec.json", "config.json", "metadata.json"):
            (model / name).write_text("not what it should be")
    result = serve("--model", str(model))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lanp serve: error (invalid_model):"), result.stderr


def test_an_invalid_setting_names_its_variable(tmp_path: Path, tiny_model_dir: Path) -> None:
    import os

    result = serve("--model", str(tiny_model_dir), env={**os.environ, "LANP_QUEUE_SIZE": "zero"})
    assert result.returncode == 2 and "LANP_QUEUE_SIZE" in result.stderr and len(result.stderr.splitlines()) == 1


ARENAS_SCRIPT = """
import ctypes, sys, threading
from lanp_vad.service.server import limit_malloc_arenas
if sys.argv[1] == "limited":
    assert limit_malloc_arenas()
together = threading.Barrier(16)
def churn():
    kept = [bytearray(100_000) for _ in range(50)]  # below the mmap threshold: from the thread's arena
    together.wait()  # all alive at once: a thread that ended first would hand its arena to the next one
    del kept
threads = [threading.Thread(target=churn) for _ in range(16)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
ctypes.CDLL("libc.so.6").malloc_stats()
"""


@pytest.mark.skipif(sys.platform != "linux", reason="glibc's malloc")
def test_the_server_caps_its_malloc_arenas() -> None:
    """Threads come and go in the server (streams, pools); each gets a glibc arena of its own unless capped, and
    memory freed in an arena mostly stays with the process (the soak's creep)."""
    environment = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}

    def arenas(mode: str) -> int:
        done = subprocess.run([sys.executable, "-c", ARENAS_SCRIPT, mode], capture_output=True, text=True,
                              env=environment, cwd=REPO_ROOT, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stderr.count("Arena ")

    assert arenas("default") > 2
    assert arenas("limited") <= 2
