"""Scoring one video with a trained model: per-snippet, per-frame scores, timestamps and event segments.

``Scorer.from_model_dir`` loads a model directory once (its head, feature spec, default threshold from
``metadata.json``) and builds the feature extractor the spec describes; a model whose spec differs from the
extractor's is refused with both specs named. With torch installed the head is the classifier in torch and the
extractor the torch one; without it (or with ``exported=True``) both are the networks ``lanp export`` wrote into
the model directory, run by ONNX Runtime or OpenVINO, and the scores agree with torch's to 1e-4.
``Scorer.score_video`` returns a ``VideoScore``, THE JSON document of ``POST /score`` and ``lanp score``: both call
this function, so they agree to the bit.

Per-frame scores follow the field's convention: each frame gets the score of the snippet that holds it, frames of
a padded last snippet included (with ``pad_last=False`` the frames of the dropped partial snippet take the last
snippet's score, so every decoded frame still has exactly one score).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.base import PooledExtractor
from lanp_vad.pipeline.features.sessions import INSTALL_HINTS, importable
from lanp_vad.pipeline.features.spec import FeatureSpec
from lanp_vad.pipeline.files import files_sha256
from lanp_vad.pipeline.scoring.config import DEFAULT_THRESHOLD, ScoringConfig
from lanp_vad.pipeline.scoring.evidence import container_start_time
from lanp_vad.pipeline.scoring.export import load_exported
from lanp_vad.pipeline.scoring.heads import SnippetHead
from lanp_vad.pipeline.scoring.result import (
    DomainShift,
    ScoringCancelled,
    VideoScore,
    WorkLimitExceeded,
    domain_shift_warning,
    event_segments,
    model_id,
    numbered,
    saturation_warning,
)
from lanp_vad.pipeline.scoring.segments import frame_times
from lanp_vad.pipeline.training.domain import SHIFT_WARN_AT, FeatureStats
from lanp_vad.pipeline.training.model_dir import ModelDirError, ModelFiles, read_model_files, weights_files
from lanp_vad.pipeline.video import VideoInfo

log = logging.getLogger(__name__)

ProgressCallback = Callable[[float], None]
CancelCallback = Callable[[], bool]


def frame_scores_from_snippets(snippet_scores: np.ndarray, frame_to_snippet: np.ndarray) -> np.ndarray:
    """Each frame's snippet score; frames outside every snippet (-1: a dropped partial) take the last one."""
    indices = np.where(frame_to_snippet < 0, snippet_scores.size - 1, frame_to_snippet)
    return snippet_scores[indices]


def _model_threshold(metadata: dict[str, Any], model_dir: Path) -> tuple[float, str]:
    value = metadata.get("threshold")
    if value is None:
        log.warning("%s/metadata.json has no threshold; using %.2f", model_dir, DEFAULT_THRESHOLD)
        return DEFAULT_THRESHOLD, "default"
    try:
        threshold = float(value)
    except (TypeError, ValueError) as error:
        raise ModelDirError(f"{model_dir}/metadata.json: threshold {value!r} is not a number") from error
    if not 0.0 <= threshold <= 1.0:
        raise ModelDirError(f"{model_dir}/metadata.json: threshold {threshold} is outside [0, 1]")
    return threshold, "metadata"


def check_threshold(threshold: float) -> float:
    """A per-call threshold override: a finite number in [0, 1]."""
    if not (isinstance(threshold, int | float) and 0.0 <= float(threshold) <= 1.0):
        raise UserError(f"threshold must be a number in [0, 1], got {threshold!r}", kind=ErrorKind.INVALID_ARGUMENT)
    return float(threshold)


class Scorer:
    """A loaded model's head plus its matching feature extractor, ready to score videos one after another."""

    def __init__(
        self,
        *,
        model_dir: Path,
        head: SnippetHead,
        spec: FeatureSpec,
        extractor: PooledExtractor,
        metadata: dict[str, Any],
        config: ScoringConfig | None = None,
        feature_stats: FeatureStats | None = None,
    ):
        self.model_dir = model_dir
        self.head = head
        self.spec = spec
        self.extractor = extractor
        self.metadata = metadata
        self.device = head.device
        self.config = config or ScoringConfig()
        self.feature_stats = feature_stats
        self.threshold, self.threshold_source = _model_threshold(metadata, model_dir)
        self.model_sha256 = files_sha256(weights_files(model_dir))

    @property
    def decode_timeout_s(self) -> float | None:
        return self.config.decode_timeout_s

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str | Path,
        *,
        device: str = "auto",
        weights: str | None = None,
        config: ScoringConfig | None = None,
        runtime: str = "auto",
        exported: bool | None = None,
    ) -> Scorer:
        """Load ``model_dir`` and build the extractor its spec names (``weights`` overrides where they live).

        ``config`` holds the defaults of every ``score_video`` call (threshold, segment rules) and the decode
        timeout: with ``decode_timeout_s`` set (the default) every video is decoded in a worker process that is
        killed when it makes no progress for that long, so a hostile or broken file can neither hang nor crash
        the caller; the process is started once and reused (``close()`` or ``with`` stops it). ``None`` decodes
        in this process (for trusted inputs). Both give the same numbers. ``runtime`` is the backbone's inference
        runtime (``ExtractionConfig.runtime``; features do not depend on it). ``exported``: score with the
        networks ``lanp export`` wrote into the model directory (default: when torch is not installed)."""
        model_dir = Path(model_dir)
        files = read_model_files(model_dir)
        if exported is None:
            exported = not importable("torch")
        if exported:
            if device not in ("auto", "cpu"):
                raise UserError(f"the exported model runs on the CPU, not on {device}: install torch for a GPU "
                                f"({INSTALL_HINTS['torch']})", kind=ErrorKind.MISSING_DEPENDENCY)
            extractor, head = load_exported(model_dir, files, runtime=runtime)
        else:
            extractor, head = _torch_pipeline(model_dir, files, device=device, weights=weights, runtime=runtime)
        if files.calibration is not None:  # the classifier's and the normality bank's evidence, calibrated
            head = files.detector(head)
        return cls(
            model_dir=model_dir,
            head=head,
            spec=files.spec,
            extractor=extractor,
            metadata=dict(files.metadata),
            config=config,
            feature_stats=FeatureStats.load(model_dir),
        )

    @property
    def identity(self) -> dict[str, Any]:
        """Which model and which features made a score: part of every result."""
        return {
            "id": model_id(self.model_dir.name, self.model_sha256),
            "name": self.model_dir.name,
            "sha256": self.model_sha256,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "device": self.device,
            "runtime": self.extractor.runtime,
        }

    @property
    def spec_identity(self) -> dict[str, Any]:
        return {"hash": self.spec.digest(), **self.spec.model_dump(mode="json")}

    def warm_up(self) -> None:
        """Run the backbone and the classifier once and start the decode processes (when decoding is isolated),
        so that the first request pays no lazy initialisation."""
        frames = self.extractor.decode.frames_per_snippet
        features = self.extractor.features(np.zeros((1, frames, 64, 64, 3), dtype=np.uint8))
        self.head(features)
        if self.decode_timeout_s is not None:
            self.extractor.start_workers()

    def probe(self, source: str | Path, timeout_s: float) -> VideoInfo:
        """The video's header as scoring will see it; in the persistent probe process when decoding is isolated
        (killed after ``timeout_s``, DecodeTimeoutError), else in this process."""
        return self.extractor.probe(source, timeout_s=timeout_s if self.decode_timeout_s is not None else None)

    def close(self) -> None:
        """Stop the extractor's decode and probe processes (a later call starts fresh ones)."""
        self.extractor.close()

    def __enter__(self) -> Scorer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def score_video(
        self,
        source: str | Path | BinaryIO,
        *,
        name: str | None = None,
        threshold: float | None = None,
        config: ScoringConfig | None = None,
        start_time: datetime | None = None,
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
        max_snippets: int | None = None,
        limit: str | None = None,
    ) -> VideoScore:
        """Decode, extract, classify and segment one video.

        ``config`` replaces the scorer's settings for this call (threshold ``None``: the model's); ``threshold``
        is a shorthand that overrides the config's. ``start_time`` is the wall-clock time of the first frame
        (default: the container's ``creation_time`` when it has one). ``progress`` receives the done fraction;
        ``cancel`` is polled after every snippet batch (``ScoringCancelled``, a ``Canceled``, when it returns
        True). ``max_snippets`` bounds the work whatever the header said: ``WorkLimitExceeded`` (naming ``limit``)
        after the first snippet batch beyond it."""
        config = config or self.config
        if threshold is None:
            threshold = config.threshold
        threshold = self.threshold if threshold is None else check_threshold(threshold)
        if cancel is not None and cancel():
            raise ScoringCancelled("canceled before scoring started")

        def on_progress(done: int, total: int) -> None:
            if cancel is not None and cancel():
                raise ScoringCancelled(f"canceled after {done} snippets")
            if max_snippets is not None and done > max_snippets:
                raise WorkLimitExceeded(f"decoded more than {max_snippets} snippets (more than its header said)",
                                        limit=limit)
            if progress is not None and total:
                progress(min(done / total, 0.99))

        extracted = self.extractor.extract_video(source, timeout_s=self.decode_timeout_s, progress=on_progress)
        snippet_scores = self.head(extracted.features)
        info, plan = extracted.info, extracted.plan
        frame_to_snippet = np.asarray(plan.frame_to_snippet)
        num_frames = int(frame_to_snippet.size)
        frame_scores = frame_scores_from_snippets(snippet_scores, frame_to_snippet)
        times = frame_times(num_frames, info.fps, info.timestamps_s)
        segments = event_segments(frame_scores, info.fps, threshold, config.segments, times[:-1])
        shift = None
        if self.feature_stats is not None:
            figure = self.feature_stats.shift(extracted.features)
            shift = DomainShift(score=figure, threshold=SHIFT_WARN_AT, out_of_distribution=figure > SHIFT_WARN_AT)
        warnings = [warning for warning in (saturation_warning(frame_scores, shift),) if warning is not None]
        if shift is not None and shift.out_of_distribution:
            warnings.append(domain_shift_warning(shift))
        if progress is not None:
            progress(1.0)
        label = name or (Path(source).name if isinstance(source, str | Path) else "upload")
        if start_time is None and isinstance(source, str | Path):
            start_time = container_start_time(source)
        return VideoScore(
            video=label,
            fps=float(info.fps),
            num_frames=num_frames,
            duration_s=float(times[-1] - times[0]) if num_frames else 0.0,
            threshold=threshold,
            model=self.identity,
            feature_spec=self.spec_identity,
            num_snippets=int(snippet_scores.size),
            snippet_scores=snippet_scores,
            frame_scores=frame_scores,
            frame_snippets=np.where(frame_to_snippet < 0, snippet_scores.size - 1, frame_to_snippet),
            timestamps=times[:-1],
            segments=numbered(segments),
            decoder=str(getattr(info, "backend", "")),
            segment_config=config.segments,
            start_time=None if start_time is None else start_time.isoformat(),
            domain_shift=shift,
            warnings=warnings,
        )


def _torch_pipeline(model_dir: Path, files: ModelFiles, *, device: str, weights: str | None,
                    runtime: str) -> tuple[PooledExtractor, SnippetHead | None]:
    """The torch extractor of the model's spec and its classifier in torch (None if it has none), on ``device``."""
    from lanp_vad.models.torch_head import TorchHead
    from lanp_vad.pipeline.device import resolve_device
    from lanp_vad.pipeline.features.extractor import FeatureExtractor
    from lanp_vad.pipeline.training.model_dir import load_model

    torch_device = resolve_device(device)
    extractor = FeatureExtractor.from_spec(files.spec, weights=weights, device=str(torch_device), runtime=runtime,
                                           what=f"model {model_dir.name}")
    classifier = load_model(model_dir).classifier if files.has_classifier else None
    return extractor, None if classifier is None else TorchHead(classifier, torch_device)
