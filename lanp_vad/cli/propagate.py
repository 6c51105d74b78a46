"""``lanp propagate``: normality z, video scores and pseudo labels of a feature set, written as JSON.

For inspecting what the trainer will learn from: per video ``z``, ``video_score`` (the preset's
``pseudo.video_score``), ``abnormal``, ``confident_normal`` and the 0/1 ``pseudo_labels``, plus the propagation
and pseudo-label config used.
"""

from __future__ import annotations

import argparse
import sys

from lanp_vad.cli.train import add_feature_arguments, add_method_arguments


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "propagate", help="write z, video scores and pseudo labels of a feature set", description=__doc__,
    )
    add_feature_arguments(parser)
    parser.add_argument("--out", required=True, metavar="FILE", help="JSON file to write (atomically)")
    add_method_arguments(parser, example="propagation.affinity=cosine")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--skip-short", action="store_true",
                        help="leave out videos of fewer than 3 snippets (listed) instead of failing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lanp_vad.models.config import apply_overrides, preset
    from lanp_vad.pipeline.features.featureset import open_feature_set
    from lanp_vad.pipeline.training.propagate import propagate_feature_set, write_propagation

    config = apply_overrides(preset(args.preset), args.overrides)
    features = open_feature_set(args.features, feature_dir=args.feature_dir, suffix=args.suffix)
    result = propagate_feature_set(features, config, device=args.device, skip_short=args.skip_short)
    if result.skipped:
        print(f"skipped {len(result.skipped)} video(s) shorter than 3 snippets: {', '.join(result.skipped)}",
              file=sys.stderr)
    path = write_propagation(args.out, result)
    print(f"{len(result.video_ids)} videos, {int(result.abnormal.sum())} pseudo-abnormal "
          f"(share {result.abnormal_fraction:.3f}), {len(result.confident_normal)} confident normal -> {path}")
    return 0
