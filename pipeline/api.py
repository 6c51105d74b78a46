"""The Python API: the same pipeline functions as the ``lanp`` command line, with the same defaults, in a few calls.

    from lanp_vad.pipeline import api

    api.extract(["archive/"], "feats/")                          # videos -> snippet features (resumable)
    model = api.train("feats/", "model/")                        # LANP without labels -> model directory
    result = api.score_video("clip.mp4", model)                  # one video -> VideoScore (the result document)
    report = api.score_archive(["archive/"], model, "results/")  # resumable batch job -> BatchReport
    document = api.resegment(result.model_dump(mode="json"), api.ScoringConfig(threshold=0.7))  # new events

Every default is the command line's, defined once: the ``default`` preset (``models.config.DEFAULT_PRESET``), the
extraction settings of ``ExtractionConfig``, the archive's workers and timeout, the event rules of
``ScoringConfig``; so a folder trained from Python and from ``lanp train`` gives the same model. Safe from a plain
script or a notebook without ``if __name__ == "__main__":``: the worker processes it starts never re-run the
calling script (``pipeline.workers.start_process``). Errors are the product's own (``models.errors``):
``UserError`` for bad arguments and files, ``VideoError`` for a video that cannot be used.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lanp_vad.models.config import DEFAULT_PRESET
from lanp_vad.pipeline.features.archive import ExtractionReport
from lanp_vad.pipeline.features.config import ExtractionConfig
from lanp_vad.pipeline.features.defaults import DEFAULT_TIMEOUT_S, DEFAULT_WORKERS
from lanp_vad.pipeline.scoring.config import EvidenceConfig, ScoringConfig
from lanp_vad.pipeline.scoring.result import VideoScore, resegment

__all__ = [
    "EvidenceConfig", "ExtractionConfig", "ScoringConfig", "VideoScore", "extract", "load_scorer", "resegment",
    "score_archive", "score_video", "train",
]


def extract(
    inputs: Sequence[str | Path], out_dir: str | Path, *, like: str | Path | None = None,
    config: ExtractionConfig | None = None, workers: int = DEFAULT_WORKERS, timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = False,
) -> ExtractionReport:
    """``lanp extract INPUTS --out OUT_DIR``: snippet features of every video of ``inputs`` (files, folders, globs,
    path lists) into the resumable feature folder ``out_dir``; returns the ``ExtractionReport``.

    ``like``: a model directory whose feature spec to use, so that the model can read the features (``lanp
    extract --like``); ``config``: the extraction settings otherwise (default: ``ExtractionConfig()``, the
    command line's). Not both."""
    from lanp_vad.models.errors import UserError
    from lanp_vad.pipeline.features.archive import extract_archive
    from lanp_vad.pipeline.features.extractor import FeatureExtractor

    if like is not None:
        if config is not None:
            raise UserError("give like= (a model directory's feature spec) or config=, not both")
        config = ExtractionConfig.like_model(like)
    extractor = FeatureExtractor(config or ExtractionConfig(), archive_workers=workers)
    try:
        return extract_archive(inputs, out_dir, extractor, workers=workers, timeout_s=timeout_s, progress=progress)
    finally:
        extractor.close()


def load_scorer(model: str | Path, *, device: str = "auto", config: ScoringConfig | None = None) -> Any:
    """A loaded ``Scorer`` (``pipeline.scoring.scorer``) to score many videos with one model; use it in a
    ``with`` block (or call ``close()``) to stop its decode worker."""
    from lanp_vad.pipeline.scoring.scorer import Scorer

    return Scorer.from_model_dir(model, device=device, config=config)


def score_video(
    video: str | Path, model: str | Path | Any, *, config: ScoringConfig | None = None, device: str = "auto",
) -> VideoScore:
    """Score one video file with a model directory (or a scorer from ``load_scorer``): per-frame scores, events,
    warnings. ``config``: threshold and segment rules (default: the model's threshold)."""
    if not isinstance(model, str | Path):
        return model.score_video(video, config=config)
    with load_scorer(model, device=device, config=config) as scorer:
        return scorer.score_video(video)


def score_archive(
    inputs: Sequence[str | Path], model: str | Path, out_dir: str | Path, *, config: ScoringConfig | None = None,
    plots: bool = False, evidence: EvidenceConfig | None = EvidenceConfig(), workers: int = 1,
    device: str = "auto", engine: str = "local", progress: bool = False,
) -> Any:
    """``lanp score INPUTS --out OUT_DIR``: every video of ``inputs`` (files, folders, globs, path lists) into the
    resumable output folder; returns the ``BatchReport`` (counts and failed video ids)."""
    from lanp_vad.pipeline.jobs.batch import run_batch
    from lanp_vad.pipeline.jobs.config import BatchConfig
    from lanp_vad.pipeline.video.inputs import expand_inputs

    batch = BatchConfig.build(engine=engine, workers=workers, device=device, scoring=config or ScoringConfig(),
                              plots=plots, evidence=evidence or EvidenceConfig(thumbnails=False))
    return run_batch(expand_inputs([str(item) for item in inputs]), model, out_dir, batch, progress=progress)


def train(
    features: str | Path, out_dir: str | Path, *, preset: str = DEFAULT_PRESET, overrides: Sequence[str] = (),
    progress: bool = False,
) -> Path:
    """``lanp train --features FEATURES --out OUT_DIR``: LANP without labels on a feature folder; returns the
    model directory. ``preset`` and ``overrides`` (``"section.key=value"`` strings, e.g.
    ``["train.epochs=50"]``) are the method's settings, as ``lanp train --preset / --set`` take them."""
    from lanp_vad.models.config import apply_overrides
    from lanp_vad.models.config import preset as named_preset
    from lanp_vad.pipeline.features.featureset import open_feature_set
    from lanp_vad.pipeline.training.trainer import train_lanp

    config = apply_overrides(named_preset(preset), list(overrides))
    feature_set = open_feature_set(features)
    result = train_lanp(feature_set, config, progress=progress)
    return result.save(out_dir, feature_set.spec, config)
