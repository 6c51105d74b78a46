"""Response models of every route: what the OpenAPI document promises and the schemathesis run checks.

The result document is defined here (``ScoreResult``) until the scoring room publishes its pydantic result
models; it mirrors ``VideoScore.to_dict`` field for field (``tests/service`` checks a real result against it).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobStatusName = Literal["pending", "running", "completed", "failed", "canceled"]
WebhookState = Literal["none", "pending", "delivered", "failed"]


class SegmentResult(BaseModel):
    """One event: frames ``start_frame`` (inclusive) to ``end_frame`` (exclusive) above the threshold."""

    start_frame: int
    end_frame: int
    start_s: float
    end_s: float
    peak: float
    mean: float


class ModelIdentity(BaseModel):
    """Which model made a score."""

    name: str
    sha256: str
    threshold: float
    threshold_source: str
    device: str


class ScoreResult(BaseModel):
    """The result of scoring one video: the same document as ``lanp score VIDEO``."""

    video: str
    fps: float
    num_frames: int
    duration_s: float
    threshold: float
    model: ModelIdentity
    feature_spec: dict[str, Any] = Field(description="hash and fields of the feature spec the model expects")
    decoder: str
    num_snippets: int
    snippet_scores: list[float]
    frame_scores: list[float]
    frame_snippets: list[int]
    timestamps: list[float]
    segments: list[SegmentResult]


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


class ResegmentedEvents(BaseModel):
    """A completed job's events at another threshold."""

    threshold: float
    segments: list[SegmentResult]


class JobPage(BaseModel):
    """One page of ``GET /jobs``, newest first."""

    jobs: list[JobStatus]
    total: int = Field(description="jobs matching the filter, all pages together")
    limit: int
    offset: int


class LoadedModel(ModelIdentity):
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
