"""``lanp export MODEL``: write the model's backbone and classifier as ONNX into its directory, so that ``lanp
score`` and ``lanp serve`` can score with it where torch is not installed (the CPU image).

Writes ``backbone.onnx``, ``classifier.onnx`` and ``export.json`` (what they were made from and how closely they
matched torch on a check run now: an export whose scores differ from torch's by more than 1e-4 is refused).
Needs torch and onnx (``pip install 'lanp-vad[torch]'``); run it again after training into the same folder.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export", help="export the model's networks to ONNX (scoring without torch)", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="model directory (lanp train --out)")
    parser.add_argument("--weights", help="the backbone's weights file, when the spec's are not the bundled or "
                                          "cached pretrained ones")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lanp_vad.pipeline.scoring.export import export_model

    record = export_model(args.model, weights=args.weights)
    print(f"lanp export: {args.model}: backbone.onnx, classifier.onnx (checked against torch: features within "
          f"{record.features_max_abs_diff:.1g}, scores within {record.scores_max_abs_diff:.1g})", file=sys.stderr)
    return 0
