"""The settings of a batch job, typed once: built by the CLI (or any caller), read by every engine, saved in the
output folder's ``run.json`` beside the results they produced."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.scoring.config import EvidenceConfig, ScoringConfig

Engine = Literal["local", "ray"]


class BatchError(UserError):
    """A batch job cannot start (output folder of another model, clashing video ids, unusable model, settings that
    the engine cannot honour); nothing was changed."""

    kind = ErrorKind.INVALID_ARGUMENT


class RayConfig(BaseModel):
    """How the Ray engine sizes and places its actors (``lanp score|extract --engine ray``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpus_per_actor: float | None = Field(
        None, gt=0, description="CPUs each actor reserves; default: the largest node's CPUs / workers, at least 1"
    )
    placement_timeout_s: float = Field(
        300.0, gt=0, description="give up with an error when no actor could be placed on the cluster in this time"
    )


class BatchConfig(BaseModel):
    """Everything that decides how an archive is scored (``lanp score INPUT... --out``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    engine: Engine = "local"
    workers: int = Field(1, ge=1, description="worker processes (local) or actors (ray)")
    device: str = Field("auto", description="auto (GPU when present), cpu, cuda or cuda:N")
    scoring: ScoringConfig = Field(ScoringConfig(), description="threshold and event rules (the decode timeout is "
                                   "the engines' own: timeout_s)")
    plots: bool = Field(False, description="write plots/<video_id>.png")
    evidence: EvidenceConfig = Field(EvidenceConfig(), description="events/<video_id>/<n>.jpg, .mp4 (clips)")
    timeout_s: float | None = Field(None, gt=0, description="give up on a video that takes longer than this")
    retry_failed: bool = Field(False, description="score again the videos that failed in earlier runs")
    ray: RayConfig = RayConfig()

    @classmethod
    def build(cls, **settings: object) -> BatchConfig:
        """A validated config; invalid settings raise a BatchError naming them (kind ``invalid_config``)."""
        try:
            return cls.model_validate(settings)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in issue['loc'])}: {issue['msg']}" for issue in error.errors()
            )
            raise BatchError(f"invalid batch settings: {problems}", kind=ErrorKind.INVALID_CONFIG) from None
