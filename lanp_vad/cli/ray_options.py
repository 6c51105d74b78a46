"""The Ray engine's options, shared by ``lanp score`` and ``lanp extract`` (``--engine ray``)."""

from __future__ import annotations

import argparse

from lanp_vad.cli import positive
from lanp_vad.pipeline.jobs.config import RayConfig


def add_ray_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Ray engine (--engine ray)")
    group.add_argument("--cpus-per-actor", type=positive(float), metavar="N",
                       help="CPUs each actor reserves (default: the cluster's CPUs / --workers, at most one node's)")
    group.add_argument("--placement-timeout", type=positive(float), metavar="SECONDS",
                       default=RayConfig.model_fields["placement_timeout_s"].default,
                       help="stop with an error when the actors cannot all be started in this time "
                            "(default: %(default)g)")


def ray_config_of(args: argparse.Namespace) -> RayConfig:
    return RayConfig(cpus_per_actor=args.cpus_per_actor, placement_timeout_s=args.placement_timeout)
