"""``lanp extract``: snippet features of videos into a feature folder that ``lanp train --features`` reads.

Resumable: videos already in the folder's manifest are skipped. A video that cannot be decoded (or hangs past
``--timeout``) is recorded as failed in the manifest and the others go on. Exit status: 0 when every video was
extracted, 1 when any failed (after finishing all the others), 2 on usage errors (unknown backbone, missing
weights, inputs that name nothing, a folder holding features of another spec).
"""

from __future__ import annotations

import argparse
import sys

from lanp_vad.cli import add_video_inputs, positive
from lanp_vad.cli.ray_options import add_ray_arguments, ray_config_of
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract snippet features of videos into a feature folder (resumable)",
        description=__doc__,
    )
    add_video_inputs(parser)
    parser.add_argument("--out", required=True, metavar="FEATURE_DIR", help="feature folder (created or resumed)")
    parser.add_argument("--backbone", default="efficientnet_lite0",
                        help="backbone name (default efficientnet_lite0: real ImageNet weights, offline)")
    parser.add_argument("--weights", default="pretrained",
                        help="pretrained (zoo file in $TORCH_HOME/hub/checkpoints, downloaded when online), "
                             "a checkpoint PATH, or random-init:SEED")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow a checkpoint holding arbitrary Python objects (unpickling can run code)")
    parser.add_argument("--crops", type=int, choices=(1, 10), default=1, help="center crop or 10-crop")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--runtime", default="auto", metavar="auto|torch|onnxruntime|openvino",
                        help="inference runtime of the backbone (auto: torch on CUDA, on a CPU the fastest one "
                             "installed); features do not depend on it")
    parser.add_argument("--batch-size", type=positive(int), default=16, help="snippets per forward pass")
    parser.add_argument("--workers", type=positive(int), default=2, help="decoding worker processes")
    parser.add_argument("--frames-per-snippet", type=positive(int), metavar="N",
                        help=f"frames of each {SNIPPET_LENGTH}-frame snippet fed to the backbone "
                             "(default: the backbone's)")
    parser.add_argument("--size", type=positive(int), metavar="N", help="crop size (default: the backbone's)")
    parser.add_argument("--resize", type=positive(int), metavar="N",
                        help="short side before cropping (default: the backbone's ratio, e.g. 256 for 224)")
    parser.add_argument("--fps", type=positive(float), help="resample videos to this frame rate first")
    parser.add_argument("--max-side", type=positive(int), help="downscale frames whose longer side exceeds this")
    parser.add_argument("--decoder", choices=("pyav", "decord", "auto"), default="pyav",
                        help="video decoder (auto: decord with PyAV as fallback); features do not depend on it")
    parser.add_argument("--timeout", type=positive(float), default=600.0, metavar="SECONDS",
                        help="record a video as failed when its decoding makes no progress for this long")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="ray: --workers actors on Ray Data (RAY_ADDRESS to use a cluster; needs [ray])")
    add_ray_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from lanp_vad.models.errors import ErrorKind, UserError
    from lanp_vad.pipeline.features.archive import extract_archive
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    try:
        config = ExtractionConfig(
            backbone=args.backbone, weights=args.weights, allow_pickle=args.allow_pickle, crops=args.crops,
            device=args.device, batch_size=args.batch_size, frames_per_snippet=args.frames_per_snippet,
            crop_size=args.size, resize=args.resize, fps=args.fps, max_side=args.max_side, decoder=args.decoder,
            runtime=args.runtime,
        )
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors())
        raise UserError(f"invalid extraction settings: {problems}", kind=ErrorKind.INVALID_ARGUMENT) from error
    # the local engine's decoders start while the runtime session is built
    extractor = FeatureExtractor(config, archive_workers=args.workers if args.engine == "local" else 0)
    print(f"lanp extract: {extractor.spec.describe()} on {extractor.device} ({extractor.runtime})", file=sys.stderr)
    if args.engine == "ray":
        from lanp_vad.pipeline.jobs.ray_engine import ray_extract_archive

        if args.allow_pickle:
            raise UserError("--allow-pickle is not available with --engine ray")
        report = ray_extract_archive(
            args.inputs, args.out, spec=extractor.spec, weights=args.weights, workers=args.workers,
            device=args.device, batch_size=args.batch_size, runtime=args.runtime, timeout_s=args.timeout,
            ray_config=ray_config_of(args),
            progress=not args.no_progress,
        )
    else:
        report = extract_archive(
            args.inputs, args.out, extractor, workers=args.workers, timeout_s=args.timeout,
            progress=not args.no_progress,
        )
    print(report.summary(), file=sys.stderr)
    return 1 if report.failed else 0
