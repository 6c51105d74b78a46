"""The result of scoring one video, torch-free: ``VideoScore``, the one definition of the result document.

``VideoScore`` (pydantic) is THE document of ``POST /score``, ``lanp score`` and ``videos/<id>.json`` of a batch
run: in memory its scores are numpy arrays, in JSON lists (``model_dump(mode="json")``, ``model_dump_json()``),
and ``parse_document`` reads one back. Its JSON Schema (``schema_version`` ``SCHEMA_VERSION``) ships with the
package (``pipeline/scoring/score_document.schema.json``, ``document_schema()``) and is the route's OpenAPI
response. ``resegment(document, config)`` recomputes the events of a stored document at another threshold or with
other segment rules, without decoding: the same function a fresh score ends with, so both give the same events.

Nothing here imports torch: the service, the plot and ``lanp segments`` use it without loading a model.
"""

from __future__ import annotations

import csv
import io
import json
from enum import StrEnum
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from lanp_vad.models.errors import Canceled, ErrorKind, UserError, VideoError
from lanp_vad.pipeline.scoring.config import ScoringConfig, SegmentConfig
from lanp_vad.pipeline.scoring.segments import Segment, find_segments

SCHEMA_VERSION = "1.0"
SCHEMA_FILE = "score_document.schema.json"
# Scores count as saturated when 90 % of the frames lie within 0.05 of 0 or of 1 (one flat curve, no ranking).
SATURATION_MARGIN = 0.05
SATURATION_SHARE = 0.9


def _vector(dtype: type, item: str) -> Any:
    """A one-dimensional numpy array in memory that is a JSON list of ``item`` s (``number``, ``integer``)."""

    def validate(value: Any) -> np.ndarray:
        array = np.asarray(value)
        if array.ndim != 1 or not (array.size == 0 or np.issubdtype(array.dtype, np.number)):
            raise ValueError(f"expected a list of {item}s")
        return array.astype(dtype, copy=False)

    return Annotated[
        np.ndarray,
        PlainValidator(validate),
        PlainSerializer(lambda array: array.tolist()),
        WithJsonSchema({"type": "array", "items": {"type": item}}),
    ]


FloatVector = _vector(np.float64, "number")
IntVector = _vector(np.int64, "integer")


class ScoringCancelled(Canceled):
    """The caller's cancel callback asked to stop scoring; nothing was produced."""


class WorkLimitExceeded(VideoError):
    """The video decoded into more snippets than the caller's budget (``max_snippets``): a header that under-states
    the frames (or none) must not turn a bounded request into unbounded work. ``limit`` names the caller's setting."""

    kind = ErrorKind.TOO_LARGE

    def __init__(self, message: str, *, limit: str | None = None):
        super().__init__(message)
        self.limit = limit


class WarningKind(StrEnum):
    """Why a result deserves a second look (the ``kind`` of each entry of ``warnings``)."""

    SATURATED = "saturated"
    DOMAIN_SHIFT = "domain_shift"


class ModelRef(BaseModel):
    """Which model made the scores; ``id`` (``name@sha256[:12]``) is the one id used in every output."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    sha256: str
    threshold: float
    threshold_source: str
    device: str


class EventSegment(Segment):
    """One event of a document: a ``Segment`` with its number."""

    index: int = Field(description="1-based event number, as on the plot and in file names")


class DomainShift(BaseModel):
    """How unlike the training archive this video's features are (``pipeline.training.domain``)."""

    score: float = Field(description="median snippet distance over the training snippets' 99th percentile")
    threshold: float = Field(description="scores above this are out of distribution")
    out_of_distribution: bool


class ResultWarning(BaseModel):
    kind: WarningKind
    message: str


class VideoScore(BaseModel):
    """The result document of one scored video (JSON of ``POST /score``, ``lanp score``, ``videos/<id>.json``)."""

    model_config = ConfigDict(extra="forbid", title="LANP score document")

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    video: str
    fps: float
    num_frames: int
    duration_s: float
    start_time: str | None = Field(None, description="wall-clock time of frame 0 (ISO 8601), when known")
    threshold: float = Field(description="the event threshold these segments were made with")
    segment_config: SegmentConfig = Field(default_factory=SegmentConfig)
    model: ModelRef
    feature_spec: dict[str, Any]
    decoder: str = ""
    num_snippets: int
    snippet_scores: FloatVector
    frame_scores: FloatVector
    frame_snippets: IntVector
    timestamps: FloatVector = Field(description="seconds from the first frame, one per frame")
    segments: list[EventSegment]
    domain_shift: DomainShift | None = None
    warnings: list[ResultWarning] = Field(default_factory=list)

    @model_validator(mode="after")
    def _lengths_agree(self) -> VideoScore:
        """One snippet score per snippet, one frame score, snippet and time per frame."""
        if self.snippet_scores.size != self.num_snippets:
            raise ValueError(f"{self.snippet_scores.size} snippet_scores for num_snippets {self.num_snippets}")
        for name in ("frame_scores", "frame_snippets", "timestamps"):
            if getattr(self, name).size != self.num_frames:
                raise ValueError(f"{getattr(self, name).size} {name} for num_frames {self.num_frames}")
        return self

    def frames_csv(self) -> str:
        """One row per decoded frame: ``frame,time_s,snippet,score,in_segment``."""
        in_segment = np.zeros(self.num_frames, dtype=bool)
        for segment in self.segments:
            in_segment[segment.start_frame : segment.end_frame] = True
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["frame", "time_s", "snippet", "score", "in_segment"])
        for frame in range(self.num_frames):
            writer.writerow(
                [
                    frame,
                    repr(float(self.timestamps[frame])),
                    int(self.frame_snippets[frame]),
                    repr(float(self.frame_scores[frame])),
                    int(in_segment[frame]),
                ]
            )
        return buffer.getvalue()


def numbered(segments: list[Segment]) -> list[EventSegment]:
    """Segments as a document's events, numbered from 1 in order."""
    return [EventSegment(index=index, **segment.model_dump()) for index, segment in enumerate(segments, 1)]


def document_schema() -> dict[str, Any]:
    """The JSON Schema of the result document, as shipped in the package."""
    return json.loads(resources.files("lanp_vad.pipeline.scoring").joinpath(SCHEMA_FILE).read_text())


def generated_schema() -> dict[str, Any]:
    """The JSON Schema made from ``VideoScore`` now: what ``SCHEMA_FILE`` must hold (a test compares them;
    regenerate with ``python -m lanp_vad.pipeline.scoring.result > pipeline/scoring/score_document.schema.json``)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"lanp-vad/score-document/{SCHEMA_VERSION}",
        **VideoScore.model_json_schema(),
    }


def model_id(name: str, sha256: str) -> str:
    """The one id of a model in every output: its directory name and the start of its weights' sha256."""
    return f"{name}@{sha256[:12]}"


def saturation_warning(frame_scores: np.ndarray, shift: DomainShift | None = None) -> ResultWarning | None:
    """A warning when nearly every frame scores within ``SATURATION_MARGIN`` of 0 or of 1: such a curve ranks
    nothing, and one event covering the video (or none) says more about the model than about the video. The
    message names the likely cause (``saturation_cause``) and what to do about it."""
    scores = np.asarray(frame_scores, dtype=np.float64)
    if scores.size == 0:
        return None
    for side, share in (("1", np.mean(scores >= 1 - SATURATION_MARGIN)), ("0", np.mean(scores <= SATURATION_MARGIN))):
        if share >= SATURATION_SHARE:
            return ResultWarning(kind=WarningKind.SATURATED, message=saturation_cause(side == "1", share, shift))
    return None


def saturation_cause(high: bool, share: float, shift: DomainShift | None) -> str:
    """Why a saturated curve happens, worded for the operator: the video unlike the training footage (the domain
    shift says so), a whole video unlike what the model learned as normal, or nothing standing out at all."""
    where = f"{share:.0%} of the frames score within {SATURATION_MARGIN} of {1 if high else 0}"
    if shift is not None and shift.out_of_distribution:
        return (f"{where}: this video is unlike the training footage (domain shift {shift.score:.2f}, warning above "
                f"{shift.threshold:g}), so the scores reflect the new scene, not events; train on this camera")
    if high:
        return (f"{where}: the whole video differs from what the model learned as normal (one long event, or a "
                "change of scene, light or camera position); check the event's clip, and if it is ordinary, add "
                "footage like it to the training archive")
    return (f"{where}: nothing in this video stands out from the training footage, and the flat curve cannot rank "
            "moments within it; if you expected an event here, its kind may be missing from what the model can see")


def domain_shift_warning(shift: DomainShift) -> ResultWarning:
    """The warning of a video whose features lie outside the training archive's."""
    return ResultWarning(
        kind=WarningKind.DOMAIN_SHIFT,
        message=f"this video is unlike the model's training archive (domain shift {shift.score:.2f}, warning above "
        f"{shift.threshold:g}): its scores are unreliable; add footage of this camera to the training archive and "
        "train again",
    )


def parse_document(data: Any) -> VideoScore:
    """Read a result document (a stored job result, ``videos/<id>.json``); one that does not fit the schema is a
    ``UserError`` of kind ``invalid_input`` naming the first fields at fault."""
    try:
        return VideoScore.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'document'}: {e['msg']}" for e in error.errors()[:3])
        raise UserError(f"not a LANP result document: {problems}", kind=ErrorKind.INVALID_INPUT) from None


def event_segments(
    frame_scores: np.ndarray, fps: float, threshold: float, config: SegmentConfig, timestamps: np.ndarray
) -> list[Segment]:
    """The events of per-frame scores under ``config``: what scoring and re-thresholding both call."""
    return find_segments(
        frame_scores, fps, threshold, smooth_s=config.smooth_s, min_duration_s=config.min_duration_s,
        merge_gap_s=config.merge_gap_s, timestamps_s=timestamps,
    )


def resegment(document: dict[str, Any], config: ScoringConfig) -> dict[str, Any]:
    """A stored result document with its events recomputed under ``config`` (no decoding, no model).

    ``config.threshold`` ``None`` keeps the model's threshold recorded in the document (``model.threshold``);
    its segment rules replace the document's. Scores, timestamps and everything else are kept as they are.
    The result equals what ``Scorer.score_video`` returns with the same config. Raises ``UserError`` for a
    document that is not a result document."""
    score = parse_document(document)
    threshold = score.model.threshold if config.threshold is None else config.threshold
    segments = event_segments(score.frame_scores, score.fps, threshold, config.segments, score.timestamps)
    return score.model_copy(update={"threshold": threshold, "segment_config": config.segments,
                                    "segments": numbered(segments)}).model_dump(mode="json")


if __name__ == "__main__":
    print(json.dumps(generated_schema(), indent=2))
