"""The result document: re-thresholding without decoding equals a fresh score, schema and version, warnings."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from lanp_vad.models.errors import Canceled, ErrorKind, UserError
from lanp_vad.pipeline.features.extractor import FeatureExtractor
from lanp_vad.pipeline.scoring.config import ScoringConfig, make_config
from lanp_vad.pipeline.scoring.result import (
    SCHEMA_VERSION,
    DomainShift,
    ScoringCancelled,
    WarningKind,
    document_schema,
    generated_schema,
    parse_document,
    resegment,
    saturation_warning,
)
from lanp_vad.pipeline.scoring.scorer import Scorer
from tests.service.tiny_model import make_tiny_model
from tests.videos import write_video


@pytest.fixture(scope="module")
def scorer(tmp_path_factory: pytest.TempPathFactory) -> Scorer:
    model_dir = make_tiny_model(tmp_path_factory.mktemp("result") / "tiny")
    return Scorer.from_model_dir(model_dir, device="cpu", config=ScoringConfig(decode_timeout_s=None))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=120, fps=10)


@pytest.mark.parametrize(
    "config",
    [ScoringConfig(threshold=0.0), ScoringConfig(smooth_s=0, min_duration_s=0, merge_gap_s=0),
     ScoringConfig(threshold=0.5, smooth_s=2.0, min_duration_s=0.2, merge_gap_s=3.0), ScoringConfig(threshold=1.0)],
)
def test_resegmenting_a_stored_result_equals_a_fresh_score_and_decodes_nothing(
    scorer: Scorer, clip: Path, config: ScoringConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = json.loads(scorer.score_video(clip).model_dump_json())
    fresh = scorer.score_video(clip, config=config).model_dump(mode="json")
    calls: list[object] = []
    real_extract = FeatureExtractor.extract_video
    monkeypatch.setattr(FeatureExtractor, "extract_video", lambda *a, **k: calls.append(a) or real_extract(*a, **k))
    assert resegment(stored, config) == fresh
    assert calls == []  # nothing was decoded
    if config.threshold is None:
        assert fresh["threshold"] == stored["model"]["threshold"]


def test_the_median_threshold_gives_events_to_compare(scorer: Scorer, clip: Path) -> None:
    """Guard for the test above: a threshold inside the score range makes events that the settings change."""
    scores = scorer.score_video(clip).frame_scores
    middle = float(np.median(scores))
    raw = scorer.score_video(clip, config=ScoringConfig(threshold=middle, smooth_s=0, min_duration_s=0,
                                                        merge_gap_s=0))
    merged = resegment(raw.model_dump(mode="json"),
                       ScoringConfig(threshold=middle, smooth_s=0, min_duration_s=0, merge_gap_s=60))
    assert len(raw.segments) >= 1 and len(merged["segments"]) <= len(raw.segments)
    assert [s["index"] for s in merged["segments"]] == list(range(1, len(merged["segments"]) + 1))


def test_the_document_validates_against_the_shipped_schema(scorer: Scorer, clip: Path) -> None:
    assert document_schema() == generated_schema(), (
        "regenerate: python -m lanp_vad.pipeline.scoring.result > pipeline/scoring/score_document.schema.json"
    )
    document = json.loads(scorer.score_video(clip, threshold=0.0).model_dump_json())
    jsonschema.validate(document, document_schema())
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["model"]["id"] == f"tiny@{document['model']['sha256'][:12]}"
    assert parse_document(document).model_dump(mode="json") == document
    broken = {**document, "segments": [{"start_frame": "x"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, document_schema())
    with pytest.raises(UserError, match="segments") as error:
        parse_document(broken)
    assert error.value.kind == ErrorKind.INVALID_INPUT


def test_documents_that_do_not_fit_are_refused_naming_the_field(scorer: Scorer, clip: Path) -> None:
    """The one result type reads documents strictly: a document of another version (or none) and scores that do
    not match the counts are user errors naming the field, never upgraded or trimmed."""
    document = scorer.score_video(clip, threshold=0.0).model_dump(mode="json")
    for broken, field in [
        ({key: value for key, value in document.items() if key != "num_snippets"}, "num_snippets"),
        ({**document, "schema_version": "0.9"}, "schema_version"),
        ({**document, "frame_scores": document["frame_scores"][:-1]}, "frame_scores"),
        ({**document, "snippet_scores": [["nested"]]}, "snippet_scores"),
        ({**document, "model": {k: v for k, v in document["model"].items() if k != "id"}}, "model.id"),
    ]:
        with pytest.raises(UserError, match=field) as error:
            parse_document(broken)
        assert error.value.kind == ErrorKind.INVALID_INPUT


def test_saturated_scores_warn_and_ordinary_ones_do_not() -> None:
    assert saturation_warning(np.full(100, 0.99)).kind == WarningKind.SATURATED
    assert "of 0" in saturation_warning(np.full(100, 0.01)).message
    assert saturation_warning(np.linspace(0, 1, 100)) is None
    assert saturation_warning(np.r_[np.full(80, 0.99), np.full(20, 0.5)]) is None


def test_a_saturated_curve_is_worded_by_its_cause() -> None:
    """Foreign footage (the domain shift says so), a whole video unlike normal, or nothing standing out: each
    gets its own explanation and what to do."""
    foreign = DomainShift(score=6.1, threshold=3.0, out_of_distribution=True)
    familiar = DomainShift(score=1.2, threshold=3.0, out_of_distribution=False)
    shifted = saturation_warning(np.full(100, 0.99), foreign).message
    assert "unlike the training footage (domain shift 6.10" in shifted and "train on this camera" in shifted
    high = saturation_warning(np.full(100, 0.99), familiar).message
    assert "the whole video differs from what the model learned as normal" in high and "check" in high
    low = saturation_warning(np.full(100, 0.01)).message
    assert "nothing in this video stands out" in low
    assert len({shifted, high, low}) == 3


def test_config_errors_are_user_errors_and_a_cancel_is_canceled() -> None:
    with pytest.raises(UserError, match="threshold") as error:
        make_config(ScoringConfig, threshold=1.5)
    assert error.value.kind == ErrorKind.INVALID_CONFIG
    assert make_config(ScoringConfig, threshold=None, smooth_s=2.0) == ScoringConfig(smooth_s=2.0)
    assert issubclass(ScoringCancelled, Canceled)
    assert ScoringCancelled("x").kind == ErrorKind.CANCELED
