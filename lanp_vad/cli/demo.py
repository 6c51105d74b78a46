"""``lanp demo``: generate synthetic surveillance clips with known anomalies, extract EfficientNet-Lite0 features,
train LANP without labels, print the frame AUC against the generated ground truth, and score a held-back clip
(JSON + plot). Offline, on the CPU, in a few minutes; ``--quick`` is the smaller run CI uses.
"""

from __future__ import annotations

import argparse
import dataclasses


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="the whole pipeline on synthetic clips, offline on the CPU", description=__doc__,
    )  # fmt: skip
    parser.add_argument("--out", default="lanp-demo", metavar="DIR", help="output folder (default ./lanp-demo)")
    parser.add_argument("--clips", type=int, metavar="N", help="clips in the training archive (default 24, quick 12)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of everything generated (default 0)")
    parser.add_argument("--quick", action="store_true", help="a smaller archive and shorter training (for CI)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lanp_vad.pipeline.demo.run import FULL, QUICK, run_demo

    settings = QUICK if args.quick else FULL
    changes = {"seed": args.seed, **({"clips": args.clips} if args.clips is not None else {})}
    settings = dataclasses.replace(settings, **changes)
    result = run_demo(args.out, settings, progress=not args.no_progress)
    print(result.summary())
    return 0
