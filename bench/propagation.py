"""Benchmark: normality propagation over a UCF-Crime-scale synthetic set, this implementation vs a plain reference.

Both run the reference preset (RMS kernel, banded window k = 50, SciPy-rule CG with 10 iterations) on the same
features, each in its own subprocess so that peak memory (ru_maxrss) is its own, and their z are compared. The
baseline (``--baseline``) is one of:

- ``plain`` (the default): the plainest competent SciPy implementation of the official rules, ``plain_scipy``
  below: per video, the banded W built one diagonal at a time from NumPy row products, ``scipy.sparse``,
  ``W + W^T``, the symmetric normalisation and ``scipy.sparse.linalg.cg(maxiter=10)``;
- ``official``: the official code's structure (``pipeline.research.oracle.official_style``): a Python loop over
  snippets, each window's similarities with NumPy, SciPy sparse assembly and CG, several times slower than
  ``plain``.

Both sides also run as whole processes (``lanp propagate`` on the folder against a process that imports NumPy and
SciPy, loads the same files and runs the baseline): imports, loading and copies are part of what a user waits for.

    python bench/propagation.py                       # 1,610 videos, D = 2048 (writes ~6.5 GB of features once)
    python bench/propagation.py --videos 400 --repeat 3 --json out.json

Features are written once to ``--data`` (default: a folder in the system temp dir) and read from there by both
sides (page cache). The machine may be shared: timings are medians of ``--repeat`` runs, and CPU time (summed
over threads) is reported beside wall time because it depends much less on other processes.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))


class LazyFeatures(Sequence):
    """Feature files opened as memory maps on access, so only the videos being worked on are resident."""

    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> np.ndarray:  # type: ignore[override]
        return np.load(self.paths[index], mmap_mode="r")


def plain_scipy(features: np.ndarray, *, band_k: int = 50, sigma: float = 0.1, alpha: float = 0.99,
                maxiter: int = 10) -> np.ndarray:
    """z of one video (T, D) by the official rules (RMS kernel), written plainly with NumPy and SciPy.

    Snippet i links to the Lw = min(2 min(k, T - 1), T) snippets of its window (centred, shifted inside the video
    at the borders), weight exp(-rms(xi - xj) / (2 sigma^2)) * exp(-|i - j| / Lw); W + W^T, zero degrees count as
    1, S = D^-1/2 W D^-1/2, then CG on (I - alpha S) z = y for the seeds y (first two, last two) from x0 = 0
    (the official code's rules after W, shared with the oracle: ``solve_official``)."""
    from lanp_vad.pipeline.research.oracle import solve_official

    x = np.asarray(features, dtype=np.float64)
    length, dim = x.shape
    window = min(2 * min(band_k, length - 1), length)
    starts = np.clip(np.arange(length) - window // 2, 0, length - window)
    squares = np.einsum("ij,ij->i", x, x)
    rows, cols, values = [], [], []
    for gap in range(1, window):  # the pairs (i, i + gap), one diagonal at a time
        first = np.arange(length - gap)
        second = first + gap
        distances = squares[first] + squares[second] - 2 * np.einsum("ij,ij->i", x[:-gap], x[gap:])
        weight = np.exp(-np.sqrt(np.maximum(distances, 0) / dim) / (2 * sigma**2)) * np.exp(-gap / window)
        forward = second < starts[first] + window  # i + gap in the window of i
        backward = first >= starts[second]  # i in the window of i + gap
        rows += [first[forward], second[backward]]
        cols += [second[forward], first[backward]]
        values += [weight[forward], weight[backward]]
    return solve_official(np.concatenate(values), np.concatenate(rows), np.concatenate(cols), length, alpha=alpha,
                          maxiter=maxiter)


def worker(kind: str, data: Path, count: int, device: str | None, threads: int | None, out: Path) -> None:
    """Run one side once in this process; write its z and timing."""
    paths = sorted(data.glob("*.npy"))[:count]
    if threads:
        import torch

        torch.set_num_threads(threads)
    features = LazyFeatures(paths)
    cpu_start = time.process_time()
    if kind == "ours":
        import torch

        from lanp_vad.models.config import preset
        from lanp_vad.models.propagation import propagate

        config = preset("reference").propagation
        start = time.perf_counter()
        z = propagate(features, config, device=device)
        if device and device.startswith("cuda"):
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
    elif kind == "plain":
        start = time.perf_counter()
        z = [plain_scipy(features[i]) for i in range(len(features))]
        elapsed = time.perf_counter() - start
    else:
        start = time.perf_counter()
        from lanp_vad.pipeline.research.oracle import official_style

        z = [official_style(features[i]) for i in range(len(features))]
        elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    np.savez(out, *z)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": peak_mib}))


def run_side(kind: str, args: argparse.Namespace, scratch: Path) -> dict:
    """Median time over repeats (each a fresh subprocess), peak memory, z of the last run."""
    runs = []
    out = scratch / f"{kind}.npz"
    count = args.videos if kind == "ours" else args.baseline_videos
    for _ in range(args.repeat if kind == "ours" else args.baseline_repeat):
        command = [sys.executable, __file__, "--worker", kind, "--data", str(args.data), "--videos", str(count),
                   "--worker-out", str(out)] + (["--device", args.device] if args.device else [])
        command += ["--threads", str(args.threads)] if args.threads else []
        started = time.perf_counter()
        completed = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
        runs.append({**json.loads(completed.stdout.strip().splitlines()[-1]),
                     "process_seconds": time.perf_counter() - started})
    with np.load(out) as stored:
        z = [stored[f"arr_{i}"] for i in range(len(stored.files))]
    return {
        "median_seconds": statistics.median(run["seconds"] for run in runs),
        "runs_seconds": [run["seconds"] for run in runs],
        "median_cpu_seconds": statistics.median(run["cpu_seconds"] for run in runs),
        "median_process_seconds": statistics.median(run["process_seconds"] for run in runs),
        "peak_rss_mib": max(run["peak_rss_mib"] for run in runs),
        "z": z,
    }


def run_cli(args: argparse.Namespace, scratch: Path) -> float:
    """Median wall time of ``lanp propagate`` as a whole process (imports, loading, checks, propagation, JSON)."""
    if args.videos != len(sorted(args.data.glob("*.npy"))):
        return float("nan")  # the CLI reads the whole folder: only comparable when every video is used
    times = []
    for _ in range(args.repeat):
        command = [sys.executable, "-m", "lanp_vad", "propagate", "--features", str(args.data), "--preset",
                   "reference", "--out", str(scratch / "cli.json")] + (["--device", args.device] if args.device else [])
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO_ROOT)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ensure_data(args: argparse.Namespace) -> tuple[int, str]:
    """Write the synthetic UCF-scale set once (reused when its marker matches); returns (videos, length source)."""
    from lanp_vad.pipeline.research.synthetic import describe_lengths, write_synthetic_features

    marker = args.data / "frames.csv"
    if not marker.exists():
        print(f"writing the synthetic UCF-Crime-scale set (D = {args.dim}) to {args.data} ...", file=sys.stderr)
        write_synthetic_features(args.data, scale="ucf-crime", dim=args.dim, salience=1.0, seed=0, limit=args.videos)
    return len(sorted(args.data.glob("*.npy"))), describe_lengths("ucf-crime")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=1610, help="first N videos of the set (default all 1,610)")
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--device", help="torch device for this implementation (default cpu)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of this implementation (median)")
    parser.add_argument("--baseline-repeat", type=int, default=1, help="runs of the baseline")
    parser.add_argument("--baseline-videos", type=int,
                        help="run the baseline on the first N videos only and extrapolate its time by snippet count "
                             "(labelled as such in the output); default: the same videos as this implementation")
    parser.add_argument("--threads", type=int, help="torch threads for this implementation (default: torch's)")
    parser.add_argument("--data", type=Path, help="feature folder (default: <tmp>/lanp-bench-ucf-<dim>-<videos>)")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--baseline", choices=["plain", "official"], default="plain",
                        help="plain: the plain SciPy implementation (default); official: the official code's loop")
    parser.add_argument("--worker", choices=["ours", "plain", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data = args.data or Path(tempfile.gettempdir()) / f"lanp-bench-ucf-{args.dim}-{args.videos}"
    if args.worker:
        worker(args.worker, args.data, args.videos, args.device, args.threads, args.worker_out)
        return
    available, length_source = ensure_data(args)
    args.videos = min(args.videos, available)
    args.baseline_videos = min(args.baseline_videos or args.videos, args.videos)
    lengths = [np.load(path, mmap_mode="r").shape[0] for path in sorted(args.data.glob("*.npy"))[: args.videos]]
    snippets, baseline_snippets = sum(lengths), sum(lengths[: args.baseline_videos])
    with tempfile.TemporaryDirectory() as scratch:
        ours = run_side("ours", args, Path(scratch))
        baseline = run_side(args.baseline, args, Path(scratch))
        cli_seconds = run_cli(args, Path(scratch))
    compared = list(zip(ours["z"], baseline["z"], strict=False))  # the baseline's videos (a prefix)
    max_abs = max(float(np.max(np.abs(a - b))) for a, b in compared)
    max_rel = max(float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)) for a, b in compared)
    extrapolated = args.baseline_videos < args.videos
    baseline_seconds = baseline["median_seconds"] * snippets / baseline_snippets
    ratio = baseline_seconds / ours["median_seconds"]
    baseline_cpu = baseline["median_cpu_seconds"] * snippets / baseline_snippets
    cpu_ratio = baseline_cpu / ours["median_cpu_seconds"]
    baseline_process = baseline["median_process_seconds"] * snippets / baseline_snippets
    process_ratio = baseline_process / cli_seconds
    result = {
        "videos": args.videos,
        "snippets": snippets,
        "dim": args.dim,
        "lengths": length_source,
        "device": args.device or "cpu",
        "threads": args.threads,
        "ours": {k: v for k, v in ours.items() if k != "z"},
        "baseline": args.baseline,
        "baseline_side": {
            **{k: v for k, v in baseline.items() if k != "z"},
            "videos": args.baseline_videos,
            "snippets": baseline_snippets,
            "seconds_for_all_videos": baseline_seconds,
            "cpu_seconds_for_all_videos": baseline_cpu,
            "extrapolated": extrapolated,
        },
        "speedup": ratio,
        "lanp_propagate_process_seconds": cli_seconds,
        "baseline_process_seconds_for_all_videos": baseline_process,
        "process_speedup": process_ratio,
        "cpu_time_ratio": cpu_ratio,
        "compared_videos": len(compared),
        "max_abs_diff_z": max_abs,
        "max_rel_diff_z": max_rel,
    }
    label = (f"EXTRAPOLATED from {args.baseline_videos} videos ({baseline_snippets:,} snippets) by snippet count"
             if extrapolated else "measured")
    print(
        f"{args.videos} videos, {snippets:,} snippets, D = {args.dim} ({length_source})\n"
        f"  this implementation ({result['device']}): median {ours['median_seconds']:.2f} s of "
        f"{len(ours['runs_seconds'])}, peak RSS {ours['peak_rss_mib']:.0f} MiB\n"
        f"  baseline {args.baseline} (SciPy, CPU): {baseline_seconds:.2f} s for all videos ({label}; median of "
        f"{len(baseline['runs_seconds'])}), peak RSS {baseline['peak_rss_mib']:.0f} MiB\n"
        f"  CPU time (all threads; steadier than wall time on a shared machine): this implementation "
        f"{ours['median_cpu_seconds']:.1f} s, baseline {baseline_cpu:.1f} s ({label}), ratio {cpu_ratio:.1f}x\n"
        f"  whole process: `lanp propagate` {cli_seconds:.2f} s, baseline process {baseline_process:.2f} s "
        f"({label}), ratio {process_ratio:.1f}x\n"
        f"  speed-up {ratio:.1f}x; z agree on {len(compared)} videos to max abs {max_abs:.2e}, "
        f"max rel (to each video's max) {max_rel:.2e}"
    )
    if math.isfinite(ratio) and args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
