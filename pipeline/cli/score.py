"""``lanp score``: score one video (JSON on stdout) or a whole archive (``--out``: resumable batch job).

Exit status: 0 when every video was scored, 1 when any failed (the others are still processed), 2 on usage
errors (missing model, bad threshold, inputs that name nothing, an output folder of another model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from pipeline.cli import positive
from pipeline.cli.ray_options import add_ray_arguments, ray_config_of


def _threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score videos with a trained model (one video: JSON on stdout; --out: batch job)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="video files, folders (searched recursively), glob patterns, frame folders or .txt lists of paths",
    )
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="a model directory (lanp train)")
    parser.add_argument("--out", metavar="OUT_DIR", help="run the batch job writing its outputs here (resumable)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local worker processes, or Ray Data (RAY_ADDRESS to use a cluster; needs [ray])")
    parser.add_argument("--threshold", type=_threshold, help="event threshold in [0, 1] (default: the model's)")
    parser.add_argument("--plots", action="store_true", help="write plots/<video_id>.png score curves (--out)")
    parser.add_argument("--workers", type=positive(int), default=1,
                        help="worker processes (local) or actors (ray); on a GPU one process owns the device")
    parser.add_argument("--retry-failed", action="store_true", help="score again the videos that failed before")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--timeout", type=positive(float), metavar="SECONDS",
                        help="give up on (and record as failed) a video that takes longer than this")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_ray_arguments(parser)
    parser.set_defaults(handler=run)


def _score_single(args: argparse.Namespace, video: Any) -> int:
    from pipeline.scoring.scorer import Scorer, ScoringCancelled
    from pipeline.video import VideoError

    scorer = Scorer.from_model_dir(args.model, device=args.device)
    try:
        deadline = None if args.timeout is None else time.monotonic() + args.timeout
        score = scorer.score_video(video.path, threshold=args.threshold,
                                   cancel=None if deadline is None else lambda: time.monotonic() > deadline)
    except (VideoError, ScoringCancelled) as error:
        kind = getattr(error, "kind", None) or "timeout"
        print(f"lanp score: {video.path}: {kind}: {error}", file=sys.stderr)
        return 1
    json.dump(score.to_dict(), sys.stdout)
    sys.stdout.write("\n")
    return 0


def run(args: argparse.Namespace) -> int:
    from models.errors import UserError
    from pipeline.video.inputs import expand_inputs

    videos = expand_inputs(args.inputs)
    if args.out is None:
        if len(videos) > 1:
            raise UserError(f"the inputs name {len(videos)} videos: give --out OUT_DIR to score them as a batch")
        if args.plots:
            raise UserError("--plots needs --out OUT_DIR")
        return _score_single(args, videos[0])

    from pipeline.jobs.batch import run_batch
    from pipeline.jobs.config import BatchConfig

    config = BatchConfig.build(
        engine=args.engine, workers=args.workers, device=args.device, threshold=args.threshold, plots=args.plots,
        timeout_s=args.timeout, retry_failed=args.retry_failed, ray=ray_config_of(args),
    )
    report = run_batch(videos, args.model, args.out, config, progress=not args.no_progress)
    print(
        f"{report.total} video(s): {report.scored} scored, {report.skipped} done before, "
        f"{len(report.failed)} failed; {report.snippets} snippets in {report.seconds:.1f} s; outputs in {args.out}",
        file=sys.stderr,
    )
    if report.failed:
        shown = ", ".join(report.failed[:10]) + (" ..." if len(report.failed) > 10 else "")
        print(f"failed (see {args.out}/summary.csv): {shown}", file=sys.stderr)
    return 0 if report.ok else 1
