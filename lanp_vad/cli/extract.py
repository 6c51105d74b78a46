"""``lanp extract``: snippet features of videos into a feature folder that ``lanp train --features`` reads.

``--like MODEL_DIR`` makes the features a trained model reads (its backbone, frames per snippet, sizes, fps):
use it for footage you will evaluate or train beside that model. Without it, the options below (each defaulting
to the product's extraction settings) say what to make.

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
from lanp_vad.pipeline.features.defaults import DEFAULT_TIMEOUT_S, DEFAULT_WORKERS
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "extract",
        help="extract snippet features of videos into a feature folder (resumable)",
        description=__doc__,
    )
    add_video_inputs(parser)
    parser.add_argument("--out", required=True, metavar="FEATURE_DIR", help="feature folder (created or resumed)")
    parser.add_argument("--like", metavar="MODEL_DIR",
                        help="the feature spec of this model directory (instead of the spec options below)")
    spec = parser.add_argument_group("feature spec (what the features are; not with --like)")
    spec.add_argument("--backbone", help="backbone name (default efficientnet_lite0: real ImageNet weights, offline)")
    parser.add_argument("--weights",
                        help="pretrained (the default: zoo file in $TORCH_HOME/hub/checkpoints, downloaded when "
                             "online), a checkpoint PATH, or random-init:SEED")
    parser.add_argument("--allow-pickle", action="store_true",
                        help="allow a checkpoint holding arbitrary Python objects (unpickling can run code)")
    spec.add_argument("--crops", type=int, choices=(1, 10), help="center crop (the default) or 10-crop")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--runtime", metavar="auto|torch|onnxruntime|openvino",
                        help="inference runtime of the backbone (auto: torch on CUDA, on a CPU the fastest one "
                             "installed); features do not depend on it")
    parser.add_argument("--batch-size", type=positive(int), help="snippets per forward pass (default 16)")
    parser.add_argument("--workers", type=positive(int), default=DEFAULT_WORKERS, help="decoding worker processes")
    spec.add_argument("--frames-per-snippet", type=positive(int), metavar="N",
                        help=f"frames of each {SNIPPET_LENGTH}-frame snippet fed to the backbone "
                             "(default: the backbone's)")
    spec.add_argument("--crop-size", type=positive(int), metavar="N", help="crop size (default: the backbone's)")
    spec.add_argument("--resize", type=positive(int), metavar="N",
                        help="short side before cropping (default: the backbone's ratio, e.g. 256 for 224)")
    spec.add_argument("--fps", type=positive(float), help="resample videos to this frame rate first")
    spec.add_argument("--max-side", type=positive(int), help="downscale frames whose longer side exceeds this")
    parser.add_argument("--decoder", choices=("pyav", "decord", "auto"),
                        help="video decoder (auto: decord with PyAV as fallback); features do not depend on it")
    parser.add_argument("--timeout", type=positive(float), default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                        help="record a video as failed when its decoding makes no progress for this long")
    parser.add_argument("--no-progress", action="store_true", help="no progress on stderr")
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="ray: --workers actors on Ray Data (RAY_ADDRESS to use a cluster; needs [ray])")
    add_ray_arguments(parser)
    parser.set_defaults(handler=run)


# the options that say what the features are (the spec), by the ExtractionConfig field each sets
SPEC_OPTIONS = {"backbone": "backbone", "crops": "crops", "frames-per-snippet": "frames_per_snippet",
                "crop-size": "crop_size", "resize": "resize", "fps": "fps", "max-side": "max_side"}


def extraction_settings(args: argparse.Namespace) -> dict[str, object]:
    """The ExtractionConfig fields the options give (None: not given, the config's default applies)."""
    return {
        "backbone": args.backbone, "weights": args.weights, "allow_pickle": args.allow_pickle or None,
        "crops": args.crops, "device": args.device, "batch_size": args.batch_size,
        "frames_per_snippet": args.frames_per_snippet, "crop_size": args.crop_size, "resize": args.resize,
        "fps": args.fps, "max_side": args.max_side, "decoder": args.decoder, "runtime": args.runtime,
    }


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from lanp_vad.models.errors import ErrorKind, UserError
    from lanp_vad.pipeline.features.archive import extract_archive
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    given = {key: value for key, value in extraction_settings(args).items() if value is not None}
    try:
        if args.like is None:
            config = ExtractionConfig(**given)
        else:
            spec_options = [f"--{name}" for name, key in SPEC_OPTIONS.items() if key in given]
            if spec_options:
                raise UserError(f"--like takes the feature spec from {args.like}: drop {', '.join(spec_options)}")
            config = ExtractionConfig.like_model(args.like, **given)
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
            args.inputs, args.out, spec=extractor.spec, weights=config.weights, workers=args.workers,
            device=config.device, batch_size=config.batch_size, runtime=config.runtime, timeout_s=args.timeout,
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
