"""What a list of results shows for one video, without its curves: when it was recorded, how long it is, how
many events, the top score and the warnings. The review page's job list and ``lanp score``'s one-line summary
read it; it is small enough to cache beside each stored result."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

from lanp_vad.pipeline.scoring.result import ResultWarning


class ResultSummary(BaseModel):
    """One scored video at a glance."""

    duration_s: float
    events: int = Field(description="events at the result's threshold")
    top_score: float = Field(description="the highest frame score")
    start_time: str | None = Field(description="RFC 3339 time of the first frame, when the recording's clock is "
                                               "known (container creation time or --start-time)")
    end_time: str | None = Field(description="RFC 3339 time of the end of the video, likewise")
    domain_shift: float | None = Field(description="how unlike the training archive (warns above its threshold)")
    warnings: list[ResultWarning]

    def line(self) -> str:
        """One line for a terminal: events, top score, domain shift."""
        text = f"{self.events} event(s), top score {self.top_score:.2f}"
        if self.domain_shift is not None:
            text += f", domain shift {self.domain_shift:.2f}"
        return text


def summarize(document: dict[str, Any]) -> ResultSummary:
    """The summary of a result document (``lanp score``'s JSON, a job's ``result.json``)."""
    scores = document.get("frame_scores") or [0.0]
    start = datetime.fromisoformat(document["start_time"]) if document.get("start_time") else None
    shift = document.get("domain_shift")
    return ResultSummary(
        duration_s=float(document["duration_s"]),
        events=len(document.get("segments", ())),
        top_score=float(max(scores)),
        start_time=None if start is None else start.isoformat(timespec="seconds"),
        end_time=None if start is None else (start + timedelta(seconds=document["duration_s"])).isoformat(
            timespec="seconds"),
        domain_shift=None if not shift else float(shift["score"]),
        warnings=[ResultWarning.model_validate(warning) for warning in document.get("warnings", ())],
    )
