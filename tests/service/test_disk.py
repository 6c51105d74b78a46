"""A full disk under a real server: its work directory on a small tmpfs (needs root to mount; skipped otherwise).

The kept uploads stay within their budget; with the disk filled, /readyz says not ready, uploads, path jobs and
renders get 507 naming the disk, a job running when the disk fills ends failed with kind disk_full (its final
write used to fail silently and leave it running for ever), and no partial file is left; with room again, all
works again."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.conftest import LiveServer, start_server, wait_for
from tests.service.test_service import upload
from tests.videos import write_video

DISK_MB = 48


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount = tmp_path_factory.mktemp("small-disk")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mount)],
                      capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def disk_server(small_disk: Path, tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path
                ) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("disk-root")
    write_video(root / "long.avi", codec="mpeg4", num_frames=6000, fps=25)  # seconds of work
    live = start_server(small_disk / "work", tiny_model_dir, LANP_DATA_ROOT=str(root), LANP_MIN_FREE_DISK_MB="8",
                        LANP_MAX_STORED_UPLOADS_MB="0.25", LANP_RUNTIME="torch")
    yield live
    live.stop()


def fill(disk: Path, leave_bytes: int) -> Path:
    """A file that fills ``disk`` but for about ``leave_bytes``."""
    import shutil

    filler = disk / "filler"
    with filler.open("wb") as stream, contextlib.suppress(OSError):
        while shutil.disk_usage(disk).free > leave_bytes:
            stream.write(bytes(min(2**20, max(4096, shutil.disk_usage(disk).free - leave_bytes))))
            stream.flush()
    return filler


def leftovers(work: Path) -> list[str]:
    """Temporary and partial files under the work directory (none may survive a failure)."""
    return [str(path.relative_to(work)) for path in work.rglob("*")
            if path.is_file() and (".tmp" in path.name or ".partial" in path.name or path.parent.name == "uploads")]


@pytest.mark.timeout(600)
def test_a_full_disk_is_refused_cleanly_and_a_running_job_fails_as_disk_full(
        disk_server: LiveServer, small_disk: Path, tmp_path: Path) -> None:
    work = Path(disk_server.env["LANP_WORK_DIR"])
    clip = write_video(tmp_path / "clip.mp4", num_frames=300, width=320, height=240, fps=25).read_bytes()
    with disk_server.client() as client:
        kept = [upload(client, "/jobs", clip, f"kept{n}.mp4").json()["id"] for n in range(6)]
        for job in kept:
            assert wait_for(lambda j=job: client.get(f"/jobs/{j}").json()["status"] in ("completed", "failed"),
                            120, what="a job")
        videos = [client.get(f"/jobs/{job}/video").status_code for job in kept]
        stored = sum(path.stat().st_size for path in (work / "jobs" / "inputs").iterdir())
        assert stored <= 0.25 * 2**20 and videos[-1] == 200 and videos[0] == 410, (stored, videos)

        running = client.post("/jobs", json={"path": "long.avi"}).json()["id"]
        wait_for(lambda: client.get(f"/jobs/{running}").json()["status"] == "running", 60, what="the job to run")
        filler = fill(small_disk, leave_bytes=0)
        try:
            ended = wait_for(lambda: (lambda j: j if j["status"] != "running" else None)(
                client.get(f"/jobs/{running}").json()), 120, what="the running job to end")
            assert ended["status"] == "failed" and ended["error_kind"] == "disk_full", ended
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["kind"] == "disk_full"
            answers = {
                "upload": upload(client, "/score", clip),
                "job upload": upload(client, "/jobs", clip),
                "path job": client.post("/jobs", json={"path": "long.avi"}),
                "plot": client.get(f"/jobs/{kept[-1]}/plot.png"),
                "clip": client.get(f"/jobs/{kept[-1]}/events/1/clip.mp4", params={"threshold": 0.0}),
            }
            for what, answer in answers.items():
                assert answer.status_code == 507 and answer.json()["kind"] == "disk_full", (what, answer.text)
                assert "disk" in answer.json()["detail"]
            assert leftovers(work) == []
        finally:
            filler.unlink()
        wait_for(lambda: client.get("/readyz").status_code == 200, 30, what="ready again")
        assert upload(client, "/score", clip).status_code == 200
        assert client.get(f"/jobs/{kept[-1]}/plot.png").status_code == 200
