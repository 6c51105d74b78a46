"""``lanp evaluate``: frame-level ROC-AUC and AP, and event-level metrics, of a model directory on labelled features.

Labels are built per video from its own number of feature snippets (see ``pipeline.evaluation.groundtruth``). ``ap`` is
average precision (sklearn), not the trapezoid PR-AUC of the research code, which is reported separately as
``pr_auc_trapezoid``. ``events`` holds event recall, event precision and false alarms per hour at the model's
threshold (or ``--threshold``), with the events ``lanp score`` would make (``--smooth`` etc.) and the overlap rule
of ``pipeline.evaluation.events`` (half of a true event covered = detected; half of a predicted event inside true
events = correct, else a false alarm). ``--sweep`` adds the same along thresholds 0, 0.02, ..., 1 and the
threshold with the best event recall at no more than ``--target-false-alarms`` per hour. Frame rates come from the
feature folder's manifest (``--fps`` otherwise). With ``--json`` stdout holds exactly one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from lanp_vad.cli import positive
from lanp_vad.cli.score import add_event_arguments, scoring_config, unit_interval
from lanp_vad.cli.train import add_feature_arguments, add_gt_arguments
from lanp_vad.pipeline.evaluation.events import DEFAULT_MIN_OVERLAP


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="frame ROC-AUC / AP of a model on labelled features", description=__doc__,
    )
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="a model directory (lanp train)")
    add_feature_arguments(parser)
    add_gt_arguments(parser, required=True)
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    add_event_arguments(parser, plot_options=False)
    events = parser.add_argument_group("event metrics")
    events.add_argument("--sweep", action="store_true", help="event metrics along thresholds 0..1 and a suggestion")
    events.add_argument("--target-false-alarms", type=positive(float), default=1.0, metavar="PER_HOUR",
                        help="the false-alarm rate the suggested threshold must not exceed (default 1 per hour)")
    events.add_argument("--min-overlap", type=unit_interval, default=DEFAULT_MIN_OVERLAP, metavar="SHARE",
                        help="share of an event that must be covered for it to count (default 0.5)")
    events.add_argument("--fps", type=positive(float), help="frame rate of videos the feature manifest does not give")
    parser.set_defaults(handler=run)


def _event_videos(args: argparse.Namespace, features: Any, ground_truth: Any,
                  scores: dict[str, Any]) -> list[Any] | None:
    """Per-video frame scores and labels (trimmed to the video's frames when known) with their frame rates;
    ``None`` when a frame rate is unknown (events are defined in seconds)."""
    import numpy as np

    from lanp_vad.models.errors import UserError
    from lanp_vad.pipeline.evaluation.events import EventVideo
    from lanp_vad.pipeline.evaluation.groundtruth import SNIPPET_LENGTH
    from lanp_vad.pipeline.features.featureset import MANIFEST_FILE, read_jsonl_records

    manifest = {r["video_id"]: r for r in read_jsonl_records(Path(args.features) / MANIFEST_FILE)}
    videos = []
    for entry in features:
        values = scores[entry.video_id]
        labels = ground_truth.frame_labels_for(entry.video_id, len(values), num_frames=entry.num_frames)
        frames = np.repeat(values, SNIPPET_LENGTH)
        length = min(entry.num_frames or frames.size, frames.size)
        fps = manifest.get(entry.video_id, {}).get("fps") or args.fps
        if not fps:
            if args.sweep:
                raise UserError(f"--sweep needs frame rates: none is known for {entry.video_id}; give --fps")
            return None
        videos.append(EventVideo(entry.video_id, frames[:length], labels[:length], float(fps)))
    return videos


def event_report(args: argparse.Namespace, videos: list[Any], threshold: float) -> dict[str, Any]:
    """The ``events`` part of the report: metrics at ``threshold``, and the sweep with a suggestion."""
    from lanp_vad.pipeline.evaluation.events import event_counts, suggest_threshold, sweep
    from lanp_vad.pipeline.scoring.result import event_segments

    segments = scoring_config(args).segments

    def segmenter(frame_scores: Any, fps: float, value: float) -> list[tuple[int, int]]:
        return [(s.start_frame, s.end_frame) for s in event_segments(frame_scores, fps, value, segments, None)]

    report: dict[str, Any] = {
        "overlap_rule": f"detected / correct at >= {args.min_overlap:g} coverage (pipeline.evaluation.events)",
        "segment_config": segments.model_dump(),
        "at_threshold": event_counts(videos, threshold, segmenter, min_overlap=args.min_overlap).to_dict(),
    }
    if args.sweep:
        points = sweep(videos, segmenter, min_overlap=args.min_overlap)
        best = suggest_threshold(points, args.target_false_alarms)
        report["sweep"] = [point.to_dict() for point in points]
        report["suggestion"] = {
            "target_false_alarms_per_hour": args.target_false_alarms,
            **({"threshold": None, "reason": "no threshold stays within the target"} if best is None
               else best.to_dict()),
        }
    return report


def run(args: argparse.Namespace) -> int:
    from lanp_vad.pipeline.device import resolve_device
    from lanp_vad.pipeline.evaluation.evaluator import Evaluator, frame_scores, metrics_from_frames
    from lanp_vad.pipeline.evaluation.groundtruth import load_ground_truth
    from lanp_vad.pipeline.features.featureset import check_spec_match, open_feature_set
    from lanp_vad.pipeline.training.model_dir import load_model

    loaded = load_model(args.model)
    features = open_feature_set(args.features, feature_dir=args.feature_dir, suffix=args.suffix)
    check_spec_match(loaded.spec, features, model_dir=args.model)
    ground_truth = load_ground_truth(args.gt, fmt=args.gt_format, frames=args.frames)
    device = resolve_device(args.device)
    evaluator = Evaluator(features, ground_truth, device)
    scores = evaluator.snippet_scores(loaded.torch_detector(device))
    metrics = metrics_from_frames(frame_scores(scores), evaluator.labels)
    threshold = args.threshold if args.threshold is not None else float(loaded.metadata.get("threshold", 0.5))
    videos = _event_videos(args, features, ground_truth, scores)
    events = (event_report(args, videos, threshold) if videos is not None
              else {"skipped": "the feature folder records no frame rates: give --fps for event metrics"})
    report = {
        **metrics,
        "events": events,
        "videos": len(features),
        "model": str(args.model),
        "features": features.source,
        "epoch": "final (the saved model)",
        "ap_kind": "average precision (sklearn), not the trapezoid PR-AUC",
    }
    if args.json:
        json.dump(report, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"frame ROC-AUC {metrics['auc_roc']:.4f}  AP {metrics['ap']:.4f}  "
              f"PR-AUC (trapezoid) {metrics['pr_auc_trapezoid']:.4f}  "
              f"({report['videos']} videos, {metrics['frames']} frames, {metrics['abnormal_frames']} abnormal)")
        _print_events(events)
    return 0


def _print_events(events: dict[str, Any]) -> None:
    if "skipped" in events:
        print(f"no event metrics: {events['skipped']}")
        return
    def line(point: dict[str, Any]) -> str:
        def show(value: Any) -> str:
            return "n/a" if value is None else f"{value:.3f}"

        return (f"threshold {point['threshold']:.2f}: event recall {show(point['event_recall'])} "
                f"({point['detected']}/{point['true_events']}), precision {show(point['event_precision'])}, "
                f"false alarms {point['false_alarms']} ({show(point['false_alarms_per_hour'])} per hour)")

    print("events at " + line(events["at_threshold"]))
    suggestion = events.get("suggestion")
    if suggestion is not None:
        target = suggestion["target_false_alarms_per_hour"]
        print(f"suggested for <= {target:g} false alarms per hour: "
              + (line(suggestion) if suggestion.get("threshold") is not None else "none (no threshold is that quiet)"))
