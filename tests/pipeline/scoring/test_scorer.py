"""The Scorer on a tiny real model: frame/snippet bookkeeping, identity, spec refusal, cancel, plot, CSV."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lanp_vad.models.errors import UserError
from lanp_vad.pipeline.features.spec import SpecMismatchError
from lanp_vad.pipeline.scoring.config import ScoringConfig
from lanp_vad.pipeline.scoring.plot import plot_png
from lanp_vad.pipeline.scoring.scorer import (
    Scorer,
    ScoringCancelled,
    VideoScore,
    WorkLimitExceeded,
    check_threshold,
    frame_scores_from_snippets,
)
from tests.service.tiny_model import THRESHOLD, make_tiny_model
from tests.videos import write_video


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_model(tmp_path_factory.mktemp("scorer") / "tiny")


@pytest.fixture(scope="module")
def scorer(model_dir: Path) -> Scorer:
    return Scorer.from_model_dir(model_dir, device="cpu", config=ScoringConfig(decode_timeout_s=None))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", num_frames=37, fps=10)


def test_every_decoded_frame_gets_its_snippets_score(scorer: Scorer, clip: Path) -> None:
    score = scorer.score_video(clip)
    assert score.num_frames == 37 and score.snippet_scores.shape == (3,)  # 16 + 16 + a padded 5
    np.testing.assert_array_equal(score.frame_scores, np.repeat(score.snippet_scores, 16)[:37])
    np.testing.assert_allclose(score.timestamps, np.arange(37) / 10, atol=1e-6)
    assert ((score.snippet_scores >= 0) & (score.snippet_scores <= 1)).all()
    assert score.threshold == THRESHOLD and score.model["threshold_source"] == "metadata"
    assert score.model["sha256"] == scorer.model_sha256 and score.feature_spec["hash"] == scorer.spec.digest()


def test_threshold_override_and_result_round_trip(scorer: Scorer, clip: Path) -> None:
    low = scorer.score_video(clip, threshold=0.0)
    assert low.threshold == 0.0 and [(s.start_frame, s.end_frame) for s in low.segments] == [(0, 37)]
    assert scorer.score_video(clip, threshold=1.0).segments == []
    data = json.loads(json.dumps(low.to_dict()))
    assert VideoScore.from_dict(data).to_dict() == data
    rows = low.frames_csv().splitlines()
    assert len(rows) == 38 and rows[1].endswith(",1")
    assert plot_png(low).startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="threshold"):
        check_threshold(1.5)


def test_dropped_partial_snippet_frames_take_the_last_score() -> None:
    scores = np.array([0.1, 0.9])
    frames = frame_scores_from_snippets(scores, np.array([0, 0, 1, 1, -1]))
    np.testing.assert_array_equal(frames, [0.1, 0.1, 0.9, 0.9, 0.9])


def test_cancel_and_progress(scorer: Scorer, clip: Path) -> None:
    with pytest.raises(ScoringCancelled):
        scorer.score_video(clip, cancel=lambda: True)
    seen: list[float] = []
    scorer.score_video(clip, progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_a_snippet_budget_bounds_the_work_whatever_the_header_says(scorer: Scorer, clip: Path) -> None:
    """A header may under-state its frames (or give none): ``max_snippets`` stops the decoding itself."""
    with pytest.raises(WorkLimitExceeded, match="more than 2 snippets") as raised:
        scorer.score_video(clip, max_snippets=2, limit="max_sync_frames")
    assert raised.value.limit == "max_sync_frames" and raised.value.kind == "too_large"
    assert scorer.score_video(clip, max_snippets=3).snippet_scores.shape == (3,)  # exactly the budget is fine


def test_isolated_scoring_reports_progress_and_a_cancel_leaves_the_worker_usable(model_dir: Path, clip: Path) -> None:
    with Scorer.from_model_dir(model_dir, device="cpu") as isolated:  # decoding in the persistent worker
        seen: list[float] = []
        reference = isolated.score_video(clip, progress=seen.append)
        assert 0 < seen[0] < 1 and seen[-1] == 1.0 and seen == sorted(seen)  # totals known without a probe
        checks = iter([False, True])  # not before the start, then at the first snippet batch
        with pytest.raises(ScoringCancelled):
            isolated.score_video(clip, cancel=lambda: next(checks))
        assert isolated.score_video(clip).to_dict() == reference.to_dict()
        assert isolated.probe(clip, timeout_s=30).num_frames == reference.num_frames == 37


def test_a_model_of_other_features_is_refused_naming_both_specs(model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    for name in ("model.safetensors", "config.json", "metadata.json"):
        (other / name).write_bytes((model_dir / name).read_bytes())
    spec = json.loads((model_dir / "feature_spec.json").read_text())
    (other / "feature_spec.json").write_text(json.dumps({**spec, "weights": "mine.pth:" + "0" * 64}))
    with pytest.raises(SpecMismatchError, match="mine.pth") as error:
        Scorer.from_model_dir(other, device="cpu")
    assert spec["weights"].split(":")[0] in str(error.value)
    (other / "feature_spec.json").write_text(json.dumps({**spec, "weights": "external"}))
    with pytest.raises(UserError, match="external features"):
        Scorer.from_model_dir(other, device="cpu")


def test_the_scorer_rebuilds_every_decoding_setting_the_features_were_made_with() -> None:
    """A model trained on features extracted with --max-side / --fps must be scored with the same settings."""
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    original = FeatureExtractor(ExtractionConfig(device="cpu", frames_per_snippet=1, crop_size=64, max_side=48,
                                                 fps=5.0))
    rebuilt = FeatureExtractor.from_spec(original.spec, device="cpu")
    try:
        assert rebuilt.spec == original.spec
        assert rebuilt.decode == original.decode
        assert original.decode.max_short_side == original.spec.decode_short_side == original.spec.resize  # default
    finally:
        original.close()
        rebuilt.close()


def test_a_spec_from_before_the_decode_bound_is_scored_at_full_size() -> None:
    """Models saved before ``decode_short_side`` existed were trained on full-size decodes: keep their pixels."""
    from lanp_vad.pipeline.features.config import ExtractionConfig
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.features.spec import FeatureSpec

    current = FeatureExtractor(ExtractionConfig(device="cpu", frames_per_snippet=1, crop_size=64))
    saved_before = current.spec.model_dump(mode="json")
    del saved_before["decode_short_side"]
    old_spec = FeatureSpec.model_validate(saved_before)
    rebuilt = FeatureExtractor.from_spec(old_spec, device="cpu")
    try:
        assert old_spec.decode_short_side is None and rebuilt.decode.max_short_side is None
        assert rebuilt.spec == old_spec and current.spec != old_spec
    finally:
        current.close()
        rebuilt.close()
