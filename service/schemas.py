"""Response models of every route: what the OpenAPI document promises and the schemathesis run checks.

The result document is the scoring room's own pydantic model (``VideoScore``, the same schema as the JSON
Schema shipped with the package), so ``lanp score`` and ``POST /score`` cannot drift apart.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from lanp_vad.pipeline.scoring.result import EventSegment, ModelRef
from lanp_vad.pipeline.scoring.summary import ResultSummary

JobStatusName = Literal["pending", "running", "completed", "failed", "canceled"]
WebhookState = Literal["none", "pending", "delivered", "failed"]


class JobStatus(BaseModel):
    """A job as a client sees it (no server paths)."""

    id: str
    status: JobStatusName
    video: str
    threshold: float | None
    progress: float = Field(description="done fraction, updated after every snippet batch")
    error_kind: str | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    webhook_status: WebhookState = Field(description="none: no webhook; else the delivery state")
    webhook_attempts: int
    webhook_error: str | None
    event_options: dict[str, float] = Field(
        description="event rules this job overrides (smooth_s, min_duration_s, merge_gap_s); empty: the model's"
    )
    result: ResultSummary | None = Field(
        None, description="a completed job's result at a glance (duration, events, top score, warnings)"
    )


class ResegmentedEvents(BaseModel):
    """A completed job's events at another threshold."""

    threshold: float
    segments: list[EventSegment]


class JobPage(BaseModel):
    """One page of ``GET /jobs``, newest first."""

    jobs: list[JobStatus]
    total: int = Field(description="jobs matching the filter, all pages together")
    limit: int
    offset: int


class LoadedModel(ModelRef):
    feature_spec: dict[str, Any]
    segments: dict[str, float] = Field(description="event segment options (smoothing, minimum duration, gap)")
    metadata: dict[str, Any]


class ModelsResponse(BaseModel):
    models: list[LoadedModel]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    model: str | None
    device: str | None
