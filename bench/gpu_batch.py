"""GPU benchmark of batch archive scoring (for a lent GPU machine, e.g. one H200 with 16 cores).

Same measurement as ``bench/batch.py`` (throughput in video-hours per hour and snippets/s, peak RSS of the process
tree), with GPU-sized defaults: an i3d_r50 model (random-init weights: throughput does not depend on their
values) over the Ped2 clips repeated to ``--videos``, scored by

- the local engine on the GPU (one process owns the device, bf16 autocast in the extractor), and
- the local engine on the CPU with ``--cpu-workers`` worker processes over a ``--cpu-videos`` subset (the
  baseline: what the machine's cores do without the GPU),

plus the Ray engine with one GPU actor unless ``--no-ray``. Ratios are GPU / CPU throughput. One repetition by
default: the GPU run is seconds, the CPU baseline minutes.

    python bench/gpu_batch.py --json gpu-batch.json
    python bench/gpu_batch.py --smoke        # tiny CPU-only run that checks the script end to end
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch import make_archive, make_model, measure  # noqa: E402  (the sibling bench script)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=56)
    parser.add_argument("--cpu-videos", type=int, default=8)
    parser.add_argument("--cpu-workers", type=int, default=4)
    parser.add_argument("--backbone", default="i3d_r50")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="x3d_xs at 64 px on 2 videos, CPU only")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    gpu = "cpu" if args.smoke else "cuda"
    if args.smoke:
        args.videos, args.cpu_videos, args.cpu_workers = 2, 2, 1
        args.backbone, args.crop, args.frames = "x3d_xs", 64, 2

    with tempfile.TemporaryDirectory(prefix="bench-gpu-batch-") as temporary:
        work = Path(temporary)
        model = make_model(work / "model", args.backbone, args.crop, args.frames, "cpu")
        results = [
            measure(make_archive(args.cpu_videos), model, work, engine="local", workers=args.cpu_workers,
                    device="cpu"),
            measure(make_archive(args.videos), model, work, engine="local", workers=1, device=gpu),
        ]
        if not args.no_ray:
            import ray

            ray.init(include_dashboard=False, log_to_driver=False)
            results.append(measure(make_archive(args.videos), model, work, engine="ray", workers=1, device=gpu))
            ray.shutdown()
    baseline = results[0]
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"backbone {args.backbone}; one run each; load average {load}")
    print(f"{'engine':<16} {'videos':>6} {'seconds':>8} {'snippets/s':>11} {'video-h/h':>10} {'peak MiB':>9} "
          f"{'x CPU':>6}")
    for result, device in zip(results, ["cpu", gpu, gpu], strict=False):
        result["device"] = device
        result["ratio_vs_cpu"] = result["snippets_per_s"] / baseline["snippets_per_s"]
        label = f"{result['engine']} x{result['workers']} {device}"
        print(f"{label:<16} {result['videos']:>6} {result['seconds']:8.1f} {result['snippets_per_s']:11.1f} "
              f"{result['video_hours_per_hour']:10.1f} {result['peak_rss_mib']:9.0f} {result['ratio_vs_cpu']:6.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
