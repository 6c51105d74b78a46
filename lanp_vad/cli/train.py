"""``lanp train``: train a LANP model on an unlabeled feature set and write a model directory.

No labels are used for training. ``--gt`` only logs how good the pseudo labels are (stored in metadata.json);
``--eval-features`` with ``--eval-gt`` evaluates after every epoch and records the final-epoch and the best-epoch
(test-set selection, what papers report) frame AUC in metadata.json. The saved model is the final epoch's.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_feature_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """--features / --feature-dir / --suffix (with an optional prefix, e.g. ``eval-``)."""
    flag = f"--{prefix}"
    parser.add_argument(f"{flag}features", metavar="PATH", required=not prefix,
                        help="a folder of <video>.npy (T, D) / (T, crops, D), an RTFM .list or a LANP split")
    parser.add_argument(f"{flag}feature-dir", metavar="DIR", help="where the files of a .list / split live")
    parser.add_argument(f"{flag}suffix", metavar="S", help="feature file suffix for a split (e.g. _i3d.npy)")


def add_gt_arguments(parser: argparse.ArgumentParser, prefix: str = "", *, required: bool = False) -> None:
    """--gt / --gt-format / --frames (with an optional prefix)."""
    from lanp_vad.pipeline.evaluation.groundtruth import GT_FORMATS

    flag = f"--{prefix}"
    parser.add_argument(f"{flag}gt", metavar="GT", required=required,
                        help="ground truth: mask folder, UCF txt, .mat folder, ped2.mat or interval CSV")
    parser.add_argument(f"{flag}gt-format", choices=GT_FORMATS, default="auto", help="ground-truth format")
    parser.add_argument(f"{flag}frames", metavar="CSV", help="per-video frame counts: video_id,num_frames")


def add_method_arguments(parser: argparse.ArgumentParser, *, example: str) -> None:
    """--preset / --set: the method's configuration (a preset, then field overrides), as train and propagate take."""
    from lanp_vad.models.config import DEFAULT_PRESET, PRESETS

    parser.add_argument("--preset", choices=PRESETS, default=DEFAULT_PRESET,
                        help="starting configuration (default: the product's; reference*: the official code's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help=f"override a config field, e.g. {example} (repeatable)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="train a model on unlabeled features", description=__doc__,
    )
    add_feature_arguments(parser)
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", help="model directory to write (atomically)")
    add_method_arguments(parser, example="train.epochs=50")
    parser.add_argument("--device", help="auto (GPU when present), cpu, cuda or cuda:N (train.device)")
    add_gt_arguments(parser)
    add_feature_arguments(parser, "eval-")
    add_gt_arguments(parser, "eval-")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lanp_vad.models.config import apply_overrides, preset
    from lanp_vad.models.errors import UserError
    from lanp_vad.pipeline.device import resolve_device
    from lanp_vad.pipeline.evaluation.evaluator import Evaluator
    from lanp_vad.pipeline.evaluation.groundtruth import load_ground_truth
    from lanp_vad.pipeline.features.featureset import check_spec_match, open_feature_set
    from lanp_vad.pipeline.training.trainer import train_lanp

    overrides = list(args.overrides) + ([f"train.device={args.device}"] if args.device else [])
    config = apply_overrides(preset(args.preset), overrides)
    features = open_feature_set(args.features, feature_dir=args.feature_dir, suffix=args.suffix)
    ground_truth = load_ground_truth(args.gt, fmt=args.gt_format, frames=args.frames) if args.gt else None
    evaluator = None
    if bool(args.eval_features) != bool(args.eval_gt):
        raise UserError("--eval-features and --eval-gt go together")
    if args.eval_features:
        eval_features = open_feature_set(args.eval_features, feature_dir=args.eval_feature_dir, suffix=args.eval_suffix)
        check_spec_match(features.spec, eval_features)
        eval_gt = load_ground_truth(args.eval_gt, fmt=args.eval_gt_format, frames=args.eval_frames)
        evaluator = Evaluator(eval_features, eval_gt, resolve_device(config.train.device))
    result = train_lanp(
        features, config, ground_truth=ground_truth, progress=not args.no_progress, eval_fn=evaluator
    )
    out = result.save(args.out, features.spec, config)
    # with the archive's mode (normal-only or mixed) and why: what a user checks first on a new archive; a
    # normal-only model has no classifier, so no classifier context
    recorded = ("archive", "threshold", "classifier_context")
    summary = {"model": str(out), **{key: result.metadata[key] for key in recorded if key in result.metadata},
               **result.metadata.get("metrics", {})}
    json.dump(summary, sys.stdout)
    sys.stdout.write("\n")
    return 0
