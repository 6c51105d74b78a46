"""``lanp score``: score one video (JSON on stdout) or a whole archive (``--out``: resumable batch job).

The event options (``--threshold``, ``--smooth``, ``--min-duration``, ``--merge-gap``) are the same as ``lanp
segments``'s, which recomputes events from stored results without decoding; rerunning ``lanp score --out`` on a
finished folder with other event options does the same. Evidence: ``--out`` writes a JPEG of every event's peak
frame to ``events/<video_id>/<n>.jpg`` (``--no-thumbnails`` to skip) and, with ``--clips``, an MP4 of the event
with ``--pre-roll`` / ``--post-roll`` seconds around it; one video writes them with ``--evidence DIR``.

Exit status: 0 when every video was scored, 1 when any failed (the others are still processed), 2 on usage
errors (missing model, bad threshold, inputs that name nothing, an output folder of another model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from lanp_vad.cli import add_video_inputs, positive
from lanp_vad.cli.ray_options import add_ray_arguments, ray_config_of


def unit_interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is outside [0, 1]")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def _start_time(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time such as 2024-05-01T14:30:00") from None


def add_event_arguments(parser: argparse.ArgumentParser, *, plot_options: bool = True) -> None:
    """The options that turn scores into events (``ScoringConfig``) and the plot's ground truth / start time."""
    from lanp_vad.cli.train import add_gt_arguments

    group = parser.add_argument_group("events")
    group.add_argument("--threshold", type=unit_interval, help="event threshold in [0, 1] (default: the model's)")
    group.add_argument("--smooth", type=_seconds, metavar="SECONDS", dest="smooth_s",
                       help="moving-average window before thresholding (default 0.5)")
    group.add_argument("--min-duration", type=_seconds, metavar="SECONDS", dest="min_duration_s",
                       help="drop events shorter than this (default 0.5)")
    group.add_argument("--merge-gap", type=_seconds, metavar="SECONDS", dest="merge_gap_s",
                       help="merge events separated by at most this (default 1.0)")
    if not plot_options:
        return
    plot = parser.add_argument_group("plot")
    add_gt_arguments(plot)
    plot.add_argument("--start-time", type=_start_time, metavar="ISO_TIME",
                      help="wall-clock time of the first frame (default: the container's creation time)")


def add_evidence_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("evidence")
    group.add_argument("--no-thumbnails", action="store_true", help="no JPEG of each event's peak frame")
    group.add_argument("--clips", action="store_true", help="an MP4 clip of every event")
    group.add_argument("--pre-roll", type=_seconds, metavar="SECONDS", dest="pre_roll_s",
                       help="seconds of video before each event in its clip (default 3)")
    group.add_argument("--post-roll", type=_seconds, metavar="SECONDS", dest="post_roll_s",
                       help="seconds of video after each event in its clip (default 3)")


def scoring_config(args: argparse.Namespace, **values: Any) -> Any:
    """The ``ScoringConfig`` of the parsed event options (unset ones keep their defaults)."""
    from lanp_vad.pipeline.scoring.config import ScoringConfig, make_config

    return make_config(ScoringConfig, threshold=args.threshold, smooth_s=args.smooth_s,
                       min_duration_s=args.min_duration_s, merge_gap_s=args.merge_gap_s, **values)


def evidence_config(args: argparse.Namespace) -> Any:
    from lanp_vad.pipeline.scoring.config import EvidenceConfig, make_config

    return make_config(EvidenceConfig, thumbnails=not args.no_thumbnails, clips=args.clips,
                       pre_roll_s=args.pre_roll_s, post_roll_s=args.post_roll_s)


def load_plot_ground_truth(args: argparse.Namespace) -> Any:
    from lanp_vad.pipeline.evaluation.groundtruth import load_ground_truth

    return load_ground_truth(args.gt, fmt=args.gt_format, frames=args.frames) if args.gt else None


def plotter(args: argparse.Namespace) -> Any:
    """``VideoScore -> PNG bytes`` with the ground truth (``--gt``) and start time (``--start-time``) given."""
    from lanp_vad.pipeline.scoring.plot import plot_png

    ground_truth = load_plot_ground_truth(args)

    def plot(score: Any) -> bytes:
        labels = None
        video_id = Path(score.video).stem
        if ground_truth is not None and video_id in ground_truth:
            labels = ground_truth.frame_labels_for(video_id, int(score.snippet_scores.size),
                                                   num_frames=score.num_frames)[: score.num_frames]
        return plot_png(score, ground_truth=labels, start_time=args.start_time)

    return plot


def resegment_folder(args: argparse.Namespace, folder: Path) -> int:
    """``lanp segments FOLDER``: every finished video's events, plots and evidence again, then the tables."""
    from lanp_vad.models.errors import UserError
    from lanp_vad.pipeline.jobs.config import BatchConfig
    from lanp_vad.pipeline.jobs.outputs import RUN_FILE, BatchOutputs

    run_file = folder / RUN_FILE
    if not run_file.is_file():
        raise UserError(f"{folder} is not a lanp score --out folder (no {RUN_FILE})")
    config = scoring_config(args)
    evidence = evidence_config(args)
    recorded = json.loads(run_file.read_text())
    batch = BatchConfig.model_validate(recorded.get("config", {})).model_copy(update={
        "scoring": config,
        "evidence": evidence if (evidence.clips or (folder / "events").is_dir()) else evidence.model_copy(
            update={"thumbnails": False}),
    })
    outputs = BatchOutputs(folder, model=recorded["model"], config=batch)
    count = outputs.resegment(plots=args.plots or None, plot=plotter(args))
    outputs.rebuild_tables()
    events = sum(1 for _ in (folder / "segments.csv").open()) - 1
    print(f"{count} video(s) re-segmented: {events} event(s) at threshold "
          f"{'of the model' if config.threshold is None else config.threshold}; tables in {folder}", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "score",
        help="score videos with a trained model (one video: JSON on stdout; --out: batch job)",
        description=__doc__,
    )
    add_video_inputs(parser)
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="a model directory (lanp train)")
    parser.add_argument("--out", metavar="OUT_DIR", help="run the batch job writing its outputs here (resumable)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local worker processes, or Ray Data (RAY_ADDRESS to use a cluster; needs [ray])")
    parser.add_argument("--plots", action="store_true", help="write plots/<video_id>.png score curves (--out)")
    parser.add_argument("--plot", metavar="PNG", help="one video: write its score curve here")
    parser.add_argument("--evidence", metavar="DIR", help="one video: write its event thumbnails (and clips) here")
    parser.add_argument("--workers", type=positive(int), default=1,
                        help="worker processes (local) or actors (ray); on a GPU one process owns the device")
    parser.add_argument("--retry-failed", action="store_true", help="score again the videos that failed before")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--runtime", default="auto", choices=("auto", "torch", "onnxruntime", "openvino"),
                        help="inference runtime of the backbone for one video (scores do not depend on it)")
    parser.add_argument("--timeout", type=positive(float), metavar="SECONDS",
                        help="give up on (and record as failed) a video that takes longer than this")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    add_event_arguments(parser)
    add_evidence_arguments(parser)
    add_ray_arguments(parser)
    parser.set_defaults(handler=run)


def print_warnings(document: dict[str, Any], label: str) -> None:
    for warning in document.get("warnings", ()):
        print(f"lanp: warning: {label}: {warning['message']}", file=sys.stderr)


def _score_single(args: argparse.Namespace, video: Any) -> int:
    from lanp_vad.pipeline.progress import progress_bar
    from lanp_vad.pipeline.scoring.evidence import write_evidence
    from lanp_vad.pipeline.scoring.result import ScoringCancelled
    from lanp_vad.pipeline.scoring.scorer import Scorer
    from lanp_vad.pipeline.scoring.summary import summarize
    from lanp_vad.pipeline.video import VideoError

    plot = plotter(args)  # reads the ground truth first: a bad --gt costs no scoring
    config = scoring_config(args)
    with (Scorer.from_model_dir(args.model, device=args.device, config=config, runtime=args.runtime) as scorer,
          progress_bar(total=100, desc=f"score {Path(video.path).name}", unit="%",
                       enabled=not args.no_progress) as bar):
        try:
            deadline = None if args.timeout is None else time.monotonic() + args.timeout
            score = scorer.score_video(video.path, start_time=args.start_time,
                                       progress=lambda fraction: bar.update(round(100 * fraction) - bar.n),
                                       cancel=None if deadline is None else lambda: time.monotonic() > deadline)
        except (VideoError, ScoringCancelled) as error:
            print(f"lanp score: {video.path}: {error.kind}: {error}", file=sys.stderr)
            return 1
    document = score.model_dump(mode="json")
    if args.plot:
        Path(args.plot).write_bytes(plot(score))
    if args.evidence:
        write_evidence(document, video.path, args.evidence, evidence_config(args))
    print_warnings(document, str(video.path))
    summary = summarize(document)
    shift = f" (warns above {score.domain_shift.threshold:g})" if score.domain_shift else ""
    print(f"lanp score: {video.path}: {summary.line()}{shift}", file=sys.stderr)
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
    return 0


def run(args: argparse.Namespace) -> int:
    from lanp_vad.models.errors import UserError
    from lanp_vad.pipeline.video.inputs import expand_inputs

    videos = expand_inputs(args.inputs)
    if args.out is None:
        if len(videos) > 1:
            raise UserError(f"the inputs name {len(videos)} videos: give --out OUT_DIR to score them as a batch")
        if args.plots:
            raise UserError("--plots needs --out OUT_DIR (one video: --plot FILE.png)")
        return _score_single(args, videos[0])
    if args.plot or args.evidence:
        raise UserError("--plot and --evidence are for one video; with --out use --plots (evidence goes to events/)")

    from lanp_vad.pipeline.jobs.batch import run_batch
    from lanp_vad.pipeline.jobs.config import BatchConfig

    config = BatchConfig.build(
        engine=args.engine, workers=args.workers, device=args.device, scoring=scoring_config(args),
        plots=args.plots, evidence=evidence_config(args), timeout_s=args.timeout, retry_failed=args.retry_failed,
        ray=ray_config_of(args),
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
    if args.gt or args.start_time:  # the plots again, with the ground truth / clock the workers did not have
        resegment_folder(args, Path(args.out))
    _print_batch_warnings(Path(args.out))
    return 0 if report.ok else 1


def _print_batch_warnings(out: Path) -> None:
    import csv

    with (out / "summary.csv").open() as stream:
        warned = [row for row in csv.DictReader(stream) if row.get("warnings")]
    for row in warned[:10]:
        shift = f"{float(row['domain_shift']):.2f}" if row["domain_shift"] else "n/a"
        print(f"lanp: warning: {row['video_id']}: {row['warnings'].replace(';', ', ')} (domain shift {shift})",
              file=sys.stderr)
    if len(warned) > 10:
        print(f"lanp: warning: {len(warned) - 10} more video(s) with warnings: see {out}/summary.csv", file=sys.stderr)
