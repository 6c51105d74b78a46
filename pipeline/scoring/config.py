"""The typed settings of scoring, torch-free so that the CLI, the batch job and the service share them.

``ScoringConfig`` is the one home of what turns a video into events: the threshold (``None``: the model's), how
per-frame scores become segments (smoothing, minimum duration, gap merging) and how long a decode may stall.
``EvidenceConfig`` says which pictures and clips are cut for every event. Both are frozen pydantic models: they
are validated once, saved beside every result (``segment_config`` in the result document) and cannot drift.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.scoring.segments import DEFAULT_MERGE_GAP_S, DEFAULT_MIN_DURATION_S, DEFAULT_SMOOTH_S

DEFAULT_THRESHOLD = 0.5
DEFAULT_DECODE_TIMEOUT_S = 120.0
DEFAULT_ROLL_S = 3.0


class SegmentConfig(BaseModel):
    """How per-frame scores become event segments (``pipeline.scoring.segments.find_segments``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    smooth_s: float = Field(DEFAULT_SMOOTH_S, ge=0, description="centred moving average over this many seconds")
    min_duration_s: float = Field(DEFAULT_MIN_DURATION_S, ge=0, description="events shorter than this are dropped")
    merge_gap_s: float = Field(DEFAULT_MERGE_GAP_S, ge=0, description="events this close together are merged")


class ScoringConfig(SegmentConfig):
    """Every setting of scoring one video: the event threshold, the segment rules and the decode timeout."""

    threshold: float | None = Field(None, ge=0, le=1, description="event threshold; None: the model's own")
    decode_timeout_s: float | None = Field(
        DEFAULT_DECODE_TIMEOUT_S, gt=0,
        description="decode in a worker process killed after this many seconds without progress; None: in-process",
    )

    @property
    def segments(self) -> SegmentConfig:
        """The segment rules alone (what a stored result records and re-thresholding changes)."""
        return SegmentConfig(**self.model_dump(include=set(SegmentConfig.model_fields)))


class EvidenceConfig(BaseModel):
    """The evidence cut for every event: a JPEG of its peak frame, and optionally an MP4 clip with roll."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    thumbnails: bool = True
    clips: bool = False
    pre_roll_s: float = Field(DEFAULT_ROLL_S, ge=0, description="seconds of video kept before an event")
    post_roll_s: float = Field(DEFAULT_ROLL_S, ge=0, description="seconds of video kept after an event")
    thumbnail_max_side: int = Field(480, ge=16, le=4096, description="longest side of a thumbnail in pixels")


def make_config(kind: type[BaseModel], **values: Any) -> Any:
    """``kind(**values)`` with ``None`` values left at their defaults (unset CLI flags / query parameters);
    invalid values become a ``UserError`` naming the field."""
    given = {name: value for name, value in values.items() if value is not None}
    try:
        return kind(**given)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise UserError(f"invalid {kind.__name__}: {problems}", kind=ErrorKind.INVALID_CONFIG) from None
