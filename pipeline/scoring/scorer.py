"""Scoring one video with a trained model: per-snippet, per-frame scores, timestamps and event segments.

``Scorer.from_model_dir`` loads a model directory once (classifier, feature spec, default threshold from
``metadata.json``) and builds the feature extractor the spec describes; a model whose spec differs from the
extractor's is refused with both specs named. ``Scorer.score_video`` returns a ``VideoScore`` whose ``to_dict``
is THE JSON document of ``POST /score`` and ``lanp score``: both call this function, so they agree to the bit.

Per-frame scores follow the field's convention: each frame gets the score of the snippet that holds it, frames of
a padded last snippet included (with ``pad_last=False`` the frames of the dropped partial snippet take the last
snippet's score, so every decoded frame still has exactly one score).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from pipeline.features.extract import FeatureExtractor, resolve_device
from pipeline.features.spec import FeatureSpec
from pipeline.files import sha256_file
from pipeline.scoring.segments import (
    DEFAULT_MERGE_GAP_S,
    DEFAULT_MIN_DURATION_S,
    DEFAULT_SMOOTH_S,
    Segment,
    find_segments,
    frame_times,
)
from pipeline.training.model_dir import MODEL_FILE, ModelDirError, load_model
from pipeline.video import VideoInfo

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
DEFAULT_DECODE_TIMEOUT_S = 120.0

ProgressCallback = Callable[[float], None]
CancelCallback = Callable[[], bool]


class ScoringCancelled(Exception):
    """The caller's cancel callback asked to stop; nothing was produced."""


@dataclass(frozen=True)
class SegmentOptions:
    """How per-frame scores become event segments (see ``pipeline.scoring.segments``)."""

    smooth_s: float = DEFAULT_SMOOTH_S
    min_duration_s: float = DEFAULT_MIN_DURATION_S
    merge_gap_s: float = DEFAULT_MERGE_GAP_S


@dataclass
class VideoScore:
    """Everything known about one scored video; ``to_dict`` is the JSON of ``POST /score``."""

    video: str
    fps: float
    num_frames: int
    duration_s: float
    threshold: float
    model: dict[str, Any]
    feature_spec: dict[str, Any]
    snippet_scores: np.ndarray
    frame_scores: np.ndarray
    frame_snippets: np.ndarray
    timestamps: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    decoder: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "video": self.video,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "duration_s": self.duration_s,
            "threshold": self.threshold,
            "model": self.model,
            "feature_spec": self.feature_spec,
            "decoder": self.decoder,
            "num_snippets": int(self.snippet_scores.size),
            "snippet_scores": self.snippet_scores.tolist(),
            "frame_scores": self.frame_scores.tolist(),
            "frame_snippets": self.frame_snippets.tolist(),
            "timestamps": self.timestamps.tolist(),
            "segments": [segment.to_dict() for segment in self.segments],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoScore:
        """Rebuild from ``to_dict`` output (a stored job result)."""
        return cls(
            video=data["video"],
            fps=float(data["fps"]),
            num_frames=int(data["num_frames"]),
            duration_s=float(data["duration_s"]),
            threshold=float(data["threshold"]),
            model=data["model"],
            feature_spec=data["feature_spec"],
            snippet_scores=np.asarray(data["snippet_scores"], dtype=np.float64),
            frame_scores=np.asarray(data["frame_scores"], dtype=np.float64),
            frame_snippets=np.asarray(data["frame_snippets"], dtype=np.int64),
            timestamps=np.asarray(data["timestamps"], dtype=np.float64),
            segments=[Segment(**segment) for segment in data["segments"]],
            decoder=data.get("decoder", ""),
        )

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


def build_extractor(spec: FeatureSpec, *, weights: str | None, device: torch.device) -> FeatureExtractor:
    """The extractor that makes ``spec``'s features: the same backbone, snippet and transform settings, with the
    spec's weights (``random-init:SEED`` rebuilt from the seed; otherwise ``weights`` or the pretrained file)."""
    if spec.weights == "external":
        raise ModelDirError(
            f"the model was trained on external features ({spec.describe()}); videos can only be scored by a "
            "model trained on features this project extracts"
        )
    if spec.weights.startswith("random-init"):
        weights = spec.weights
    return FeatureExtractor(
        spec.backbone,
        weights=weights or "pretrained",
        crops=spec.crops,
        device=str(device),
        frames_per_snippet=spec.frames_per_snippet,
        crop_size=spec.crop_size,
        resize=spec.resize,
        snippet_length=spec.snippet_length,
        stride=spec.stride,
        pad_last=spec.pad_last,
        target_fps=spec.fps,
        max_side=spec.max_side,
    )


def frame_scores_from_snippets(snippet_scores: np.ndarray, frame_to_snippet: np.ndarray) -> np.ndarray:
    """Each frame's snippet score; frames outside every snippet (-1: a dropped partial) take the last one."""
    indices = np.where(frame_to_snippet < 0, snippet_scores.size - 1, frame_to_snippet)
    return snippet_scores[indices]


def _model_threshold(metadata: dict[str, Any], model_dir: Path) -> tuple[float, str]:
    value = metadata.get("threshold")
    if value is None:
        log.warning("%s/metadata.json has no threshold; using %.2f", model_dir, DEFAULT_THRESHOLD)
        return DEFAULT_THRESHOLD, "default"
    if isinstance(value, dict):  # {"value": ..., "method": ...}
        value = value.get("value")
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
        raise ValueError(f"threshold must be a number in [0, 1], got {threshold!r}")
    return float(threshold)


class Scorer:
    """A loaded model plus its matching feature extractor, ready to score videos one after another."""

    def __init__(
        self,
        *,
        model_dir: Path,
        classifier: torch.nn.Module,
        spec: FeatureSpec,
        extractor: FeatureExtractor,
        metadata: dict[str, Any],
        device: torch.device,
        segment_options: SegmentOptions | None = None,
        decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S,
    ):
        self.model_dir = model_dir
        self.classifier = classifier.to(device).eval()
        self.spec = spec
        self.extractor = extractor
        self.metadata = metadata
        self.device = device
        self.segment_options = segment_options or SegmentOptions()
        self.decode_timeout_s = decode_timeout_s
        self.threshold, self.threshold_source = _model_threshold(metadata, model_dir)
        self.model_sha256 = sha256_file(model_dir / MODEL_FILE)

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str | Path,
        *,
        device: str = "auto",
        weights: str | None = None,
        segment_options: SegmentOptions | None = None,
        decode_timeout_s: float | None = DEFAULT_DECODE_TIMEOUT_S,
    ) -> Scorer:
        """Load ``model_dir`` and build the extractor its spec names (``weights`` overrides where they live).

        With ``decode_timeout_s`` (the default) every video is decoded in a worker process that is killed when it
        makes no progress for that long, so a hostile or broken file can neither hang nor crash the caller; the
        process is started once and reused (``close()`` or ``with`` stops it). ``None`` decodes in this process
        (for trusted inputs). Both give the same numbers."""
        model_dir = Path(model_dir)
        loaded = load_model(model_dir)
        torch_device = resolve_device(device)
        extractor = build_extractor(loaded.spec, weights=weights, device=torch_device)
        loaded.spec.check_compatible(extractor.spec, what=f"model {model_dir.name}", other_what="extractor")
        return cls(
            model_dir=model_dir,
            classifier=loaded.classifier,
            spec=loaded.spec,
            extractor=extractor,
            metadata=dict(loaded.metadata),
            device=torch_device,
            segment_options=segment_options,
            decode_timeout_s=decode_timeout_s,
        )

    @property
    def identity(self) -> dict[str, Any]:
        """Which model and which features made a score: part of every result."""
        return {
            "name": self.model_dir.name,
            "sha256": self.model_sha256,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "device": str(self.device),
        }

    @property
    def spec_identity(self) -> dict[str, Any]:
        return {"hash": self.spec.digest(), **self.spec.model_dump(mode="json")}

    def classify(self, features: np.ndarray) -> np.ndarray:
        """Snippet scores in [0, 1] for one video's (T, D) or (T, crops, D) features (crops averaged)."""
        tensor = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        batch = tensor.unsqueeze(0) if tensor.ndim == 2 else tensor.permute(1, 0, 2).unsqueeze(0)
        with torch.inference_mode():
            scores = self.classifier(batch)
        return scores.reshape(-1).double().cpu().numpy()

    def warm_up(self) -> None:
        """Run the backbone and the classifier once and start the decode processes (when decoding is isolated),
        so that the first request pays no lazy initialisation."""
        frames = self.extractor.decode.frames_per_snippet
        features = self.extractor.features(np.zeros((1, frames, 64, 64, 3), dtype=np.uint8))
        self.classify(features)
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
        progress: ProgressCallback | None = None,
        cancel: CancelCallback | None = None,
    ) -> VideoScore:
        """Decode, extract, classify and segment one video.

        ``progress`` receives the done fraction; ``cancel`` is polled after every snippet batch (ScoringCancelled
        when it returns True)."""
        threshold = self.threshold if threshold is None else check_threshold(threshold)
        if cancel is not None and cancel():
            raise ScoringCancelled("canceled before scoring started")

        def on_progress(done: int, total: int) -> None:
            if cancel is not None and cancel():
                raise ScoringCancelled(f"canceled after {done} snippets")
            if progress is not None and total:
                progress(min(done / total, 0.99))

        extracted = self.extractor.extract_video(
            source, timeout_s=self.decode_timeout_s, progress=on_progress
        )
        snippet_scores = self.classify(extracted.features)
        info, plan = extracted.info, extracted.plan
        frame_to_snippet = np.asarray(plan.frame_to_snippet)
        num_frames = int(frame_to_snippet.size)
        frame_scores = frame_scores_from_snippets(snippet_scores, frame_to_snippet)
        times = frame_times(num_frames, info.fps, info.timestamps_s)
        options = self.segment_options
        segments = find_segments(
            frame_scores,
            info.fps,
            threshold,
            smooth_s=options.smooth_s,
            min_duration_s=options.min_duration_s,
            merge_gap_s=options.merge_gap_s,
            timestamps_s=times[:-1],
        )
        if progress is not None:
            progress(1.0)
        label = name or (Path(source).name if isinstance(source, str | Path) else "upload")
        return VideoScore(
            video=label,
            fps=float(info.fps),
            num_frames=num_frames,
            duration_s=float(times[-1] - times[0]) if num_frames else 0.0,
            threshold=threshold,
            model=self.identity,
            feature_spec=self.spec_identity,
            snippet_scores=snippet_scores,
            frame_scores=frame_scores,
            frame_snippets=np.where(frame_to_snippet < 0, snippet_scores.size - 1, frame_to_snippet),
            timestamps=times[:-1],
            segments=segments,
            decoder=str(getattr(info, "backend", "")),
        )
