"""``lanp evaluate``: frame-level ROC-AUC and AP of a model directory on a labelled feature set.

Labels are built per video from its own number of feature snippets (see ``pipeline.evaluation.groundtruth``). ``ap`` is
average precision (sklearn), not the trapezoid PR-AUC of the research code, which is reported separately as
``pr_auc_trapezoid``. With ``--json`` stdout holds exactly one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cli.train import add_feature_arguments, add_gt_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="frame ROC-AUC / AP of a model on labelled features", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="a model directory (lanp train)")
    add_feature_arguments(parser)
    add_gt_arguments(parser, required=True)
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.device import resolve_device
    from pipeline.evaluation.evaluator import Evaluator
    from pipeline.evaluation.groundtruth import load_ground_truth
    from pipeline.features.featureset import check_spec_match, open_feature_set
    from pipeline.training.model_dir import load_model

    loaded = load_model(args.model)
    features = open_feature_set(args.features, feature_dir=args.feature_dir, suffix=args.suffix)
    check_spec_match(loaded.spec, features)
    ground_truth = load_ground_truth(args.gt, fmt=args.gt_format, frames=args.frames)
    device = resolve_device(args.device)
    metrics = Evaluator(features, ground_truth, device)(loaded.classifier.to(device))
    report = {
        **metrics,
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
    return 0
