"""The Ray engine: the same outputs as the local engine on a local Ray instance, actors sized to fit a node, and
``lanp score`` / ``lanp extract`` against a real cluster of two 1-CPU nodes (``ray start --head`` plus a second
``ray start --address``, both on 127.0.0.1, token authentication on). Skipped without the [ray] extra."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.models.errors import ErrorKind
from lanp_vad.pipeline.jobs.batch import run_batch
from lanp_vad.pipeline.jobs.config import BatchConfig, BatchError, RayConfig
from lanp_vad.pipeline.jobs.ray_engine import plan_actors
from lanp_vad.pipeline.video.inputs import expand_inputs
from tests.conftest import REPO_ROOT
from tests.pipeline.jobs.conftest import BAD_IDS


def _documents(out: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted((out / "videos").glob("*.json"))}


def test_actors_are_sized_to_fit_a_node_not_the_cluster_total() -> None:
    """Issue 12, defect 13: two 1-CPU nodes and one worker asked for a 2-CPU actor, which no node has."""
    two_small = [{"CPU": 1.0}, {"CPU": 1.0}]
    default = RayConfig()
    assert plan_actors(two_small, device="cpu", workers=1, ray_config=default).num_cpus == 1
    both = plan_actors(two_small, device="cpu", workers=4, ray_config=default)
    assert (both.workers, both.num_cpus, both.threads) == (2, 1, 1)  # no more actors than the nodes can hold
    big = plan_actors([{"CPU": 16.0}], device="cpu", workers=2, ray_config=default)
    assert (big.workers, big.num_cpus, big.threads) == (2, 8, 8)
    chosen = plan_actors([{"CPU": 16.0}, {"CPU": 4.0}], device="cpu", workers=8, ray_config=RayConfig(cpus_per_actor=4))
    assert (chosen.workers, chosen.num_cpus) == (5, 4)
    gpus = plan_actors([{"CPU": 8.0, "GPU": 2.0}, {"CPU": 8.0}], device="cuda", workers=4, ray_config=default)
    assert (gpus.workers, gpus.num_gpus, gpus.num_cpus) == (2, 1, 1)
    with pytest.raises(BatchError, match="no Ray node can hold one actor of 2 CPU") as raised:
        plan_actors(two_small, device="cpu", workers=1, ray_config=RayConfig(cpus_per_actor=2))
    assert raised.value.kind == ErrorKind.NO_RESOURCES
    with pytest.raises(BatchError, match="no GPU"):
        plan_actors(two_small, device="cuda", workers=1, ray_config=default)


def test_missing_ray_is_reported_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from lanp_vad.pipeline.jobs.ray_engine import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(BatchError, match=r"pip install 'lanp-vad\[ray\]'"):
        require_ray()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[object]:
    """A local Ray instance with 2 CPUs for this module's in-process tests."""
    ray = pytest.importorskip("ray", reason="the [ray] extra is not installed")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_engine_matches_the_local_engine(local_ray: object, archive: Path, model_dir: Path, reference: Path,
                                             tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    config = BatchConfig(engine="ray", workers=2, plots=True, device="cpu")
    report = run_batch(expand_inputs([archive]), model_dir, tmp_path, config, progress=False)
    errors = [line for line in (tmp_path / "manifest.jsonl").read_text().splitlines() if '"failed"' in line]
    assert report.failed == BAD_IDS and report.scored == report.total - len(BAD_IDS), errors

    local, distributed = _documents(reference), _documents(tmp_path)
    assert sorted(distributed) == sorted(local)
    for video_id, document in distributed.items():
        expected = local[video_id]
        np.testing.assert_allclose(document["snippet_scores"], expected["snippet_scores"], rtol=0, atol=1e-6)
        assert {k: v for k, v in document.items() if k not in ("snippet_scores", "frame_scores", "segments")} == {
            k: v for k, v in expected.items() if k not in ("snippet_scores", "frame_scores", "segments")
        }
        assert (tmp_path / "plots" / f"{video_id}.png").exists()
    columns = ["video_id", "snippet", "start_frame", "end_frame", "start_s", "end_s", "model", "spec_hash"]
    ours, theirs = pq.read_table(tmp_path / "snippets.parquet"), pq.read_table(reference / "snippets.parquet")
    assert ours.select(columns).equals(theirs.select(columns))
    np.testing.assert_allclose(ours["score"].to_numpy(), theirs["score"].to_numpy(), rtol=0, atol=1e-6)
    failed_rows = [line for line in (tmp_path / "summary.csv").read_text().splitlines() if ",failed," in line]
    assert failed_rows == [line for line in (reference / "summary.csv").read_text().splitlines()
                           if ",failed," in line]


def test_ray_extraction_fills_the_same_feature_store_as_the_local_engine(local_ray: object, archive: Path,
                                                                         model_dir: Path, tmp_path: Path) -> None:
    from lanp_vad.pipeline.features.archive import extract_archive
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.features.featureset import open_feature_set
    from lanp_vad.pipeline.features.spec import FeatureSpec
    from lanp_vad.pipeline.jobs.ray_engine import ray_extract_archive

    spec = FeatureSpec.load(model_dir)
    clips = archive / "clips"
    inputs = [clips / "yard.avi", clips / "night" / "entrance.mp4", archive / "bad" / "notes.mp4"]
    local = extract_archive(inputs, tmp_path / "local", FeatureExtractor.from_spec(spec, device="cpu"), workers=1,
                            progress=False)
    distributed = ray_extract_archive(inputs, tmp_path / "ray", spec=spec, weights=None, workers=2, device="cpu",
                                      progress=False)
    assert sorted(distributed.extracted) == sorted(local.extracted) == ["entrance", "yard"]
    assert list(distributed.failed) == list(local.failed) == ["notes"]
    ours, theirs = open_feature_set(tmp_path / "ray"), open_feature_set(tmp_path / "local")
    assert ours.spec == theirs.spec == spec
    for video_id in theirs.video_ids:
        np.testing.assert_allclose(ours.load(video_id), theirs.load(video_id), rtol=0, atol=1e-5)
    again = ray_extract_archive(inputs, tmp_path / "ray", spec=spec, weights=None, workers=1, device="cpu",
                                progress=False)
    assert sorted(again.skipped) == ["entrance", "yard"] and list(again.failed) == ["notes"]


# --- a real two-node cluster -------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_node(arguments: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen:
    """``ray start --block ...`` (stops its processes when terminated); returns once the node is up."""
    stream = log.open("w")
    node = subprocess.Popen([shutil.which("ray") or "ray", "start", "--block", "--num-cpus", "1",
                             "--node-ip-address", "127.0.0.1", "--disable-usage-stats",
                             "--dashboard-agent-listen-port", str(_free_port()), *arguments],
                            env=environment, stdout=stream, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while "will now block" not in log.read_text():
        if node.poll() is not None or time.monotonic() > deadline:
            node.kill()
            raise AssertionError(f"ray start failed:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return node


def _stop_node(node: subprocess.Popen) -> None:
    if node.poll() is None:
        node.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.wait(timeout=60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)  # whatever of this node's own process group is left
    node.wait()


@pytest.fixture
def two_node_cluster() -> Iterator[dict[str, str]]:
    """A Ray cluster of two 1-CPU nodes on 127.0.0.1 with token authentication; yields the clients' environment.

    Its own temp dir (so no other ``ray.init()`` on this machine finds it), ports and token; torn down by the ids
    of the processes started here."""
    pytest.importorskip("ray", reason="the [ray] extra is not installed")
    root = Path(tempfile.mkdtemp(prefix="lanp-ray-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    port = _free_port()
    environment = {
        **os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    environment.pop("RAY_ADDRESS", None)
    nodes: list[subprocess.Popen] = []
    try:
        nodes.append(_start_node(["--head", "--port", str(port), "--temp-dir", str(root / "t"),
                                  "--include-dashboard=false"],
                                 environment, root / "head.log"))
        nodes.append(_start_node(["--address", f"127.0.0.1:{port}"], environment, root / "node.log"))
        yield {**environment, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    finally:
        for node in reversed(nodes):
            _stop_node(node)
        shutil.rmtree(root, ignore_errors=True)


def _lanp(environment: dict[str, str], *arguments: str | Path, limit_s: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lanp_vad", *map(str, arguments), "--engine", "ray", "--device",
                           "cpu", "--no-progress"], cwd=REPO_ROOT, env=environment, capture_output=True, text=True,
                          timeout=limit_s)


HOLD_THE_CLUSTER = """
import ray, time
ray.init()
holders = [ray.remote(num_cpus=1)(type("Holder", (), {"ping": lambda self: 1})).remote() for _ in range(2)]
ray.get([holder.ping.remote() for holder in holders])
print("holding", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_score_and_extract_on_a_real_two_node_cluster(two_node_cluster: dict[str, str], archive: Path,
                                                      model_dir: Path, reference: Path, tmp_path: Path) -> None:
    """Issue 12, defect 13: this hung silently (an actor of the cluster's 2 CPUs fits on neither node)."""
    clips = [archive / "clips" / "yard.avi", archive / "clips" / "night" / "entrance.mp4"]
    scored = _lanp(two_node_cluster, "score", *clips, "--model", model_dir, "--out", tmp_path / "scores",
                   "--workers", "1")
    assert scored.returncode == 0, scored.stderr[-3000:]
    local, distributed = _documents(reference), _documents(tmp_path / "scores")
    assert sorted(distributed) == ["entrance", "yard"]
    for video_id, reference_id in (("yard", "clips__yard"), ("entrance", "clips__night__entrance")):
        np.testing.assert_allclose(distributed[video_id]["snippet_scores"], local[reference_id]["snippet_scores"],
                                   rtol=0, atol=1e-6)

    extracted = _lanp(two_node_cluster, "extract", *clips, "--out", tmp_path / "features", "--workers", "2",
                      "--backbone", "x3d_xs", "--weights", "random-init:0", "--crop-size", "64",
                      "--frames-per-snippet", "2")
    assert extracted.returncode == 0, extracted.stderr[-3000:]
    assert sorted(path.stem for path in (tmp_path / "features").glob("*.npy")) == ["entrance", "yard"]

    too_big = _lanp(two_node_cluster, "score", *clips, "--model", model_dir, "--out", tmp_path / "big",
                    "--cpus-per-actor", "2")
    assert too_big.returncode == 2 and f"({ErrorKind.NO_RESOURCES})" in too_big.stderr
    assert "no Ray node can hold one actor of 2 CPU" in too_big.stderr

    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_CLUSTER], env=two_node_cluster, cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        started = time.monotonic()
        busy = _lanp(two_node_cluster, "score", *clips, "--model", model_dir, "--out", tmp_path / "busy",
                     "--placement-timeout", "5")
        assert busy.returncode == 2 and "did not start 1 actor(s) of 1 CPU within 5 s" in busy.stderr, busy.stderr
        assert time.monotonic() - started < 120
    finally:
        holder.kill()
        holder.wait()
