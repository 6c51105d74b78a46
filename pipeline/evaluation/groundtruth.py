"""Frame-level ground truth, built per video from that video's OWN number of feature snippets T.

The field's protocol (RTFM, C2FPL, LANP): a video of T snippets covers 16*T frames; its frame labels come from the
annotation and are padded or truncated to 16*T. A global label array made for other features shifts every later
video when one T differs, so labels are always rebuilt from the features at hand.

Formats (``load_ground_truth(path, fmt=...)``):
- ``shanghaitech``: a folder of ``<video>.npy`` 0/1 frame masks (``test_frame_mask``); videos without a mask are
  normal. Mask padded with its last label / truncated to 16*T.
- ``ucf-lanp``: ``Temporal_Anomaly_Annotation_New.txt`` (``name class s1 e1 s2 e2 num_frames``, -1 = no event),
  end-exclusive events over the video's frames, padded with the last label (the LANP convention).
- ``ucf-rtfm``: a folder of ``<video>.mat`` files (``Matlab_formate``) with inclusive [start, end] events, set on a
  zero array of 16*T frames (the RTFM convention).
- ``ped2``: UCSD ``ped2.mat``, cell ``gt`` of 1-based inclusive [start; end] per test clip 01..12 (video ids
  ``01``, ``Test001`` or ``1`` all name clip 1).
- ``csv``: ``video_id,start_frame,end_frame`` rows of 0-based end-exclusive abnormal intervals (``-1,-1`` lists a
  normal video); videos not listed are normal.
Frame counts for formats that lack them come from a ``video_id,num_frames`` CSV (or a LANP ``name,label,frames``
split), else from the feature set, else 16*T.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.video.snippets import SNIPPET_LENGTH

GT_FORMATS = ("auto", "shanghaitech", "ucf-lanp", "ucf-rtfm", "ped2", "csv")


class GroundTruthError(UserError):
    """Ground truth that cannot be used with the features at hand; names the video when one is to blame."""

    kind = ErrorKind.INVALID_GROUND_TRUTH

    def __init__(self, message: str, video_id: str | None = None):
        super().__init__(f"{video_id}: {message}" if video_id else message)
        self.video_id = video_id


@dataclass(frozen=True)
class VideoAnnotation:
    """One video's annotation: abnormal intervals (0-based, end-exclusive) or a 0/1 frame mask."""

    intervals: tuple[tuple[int, int], ...] = ()
    mask: np.ndarray | None = None
    num_frames: int | None = None

    @property
    def abnormal(self) -> bool:
        return bool(self.intervals) or (self.mask is not None and bool(self.mask.any()))


@dataclass
class GroundTruth:
    """Per-video annotations plus the rule that turns them into 16*T frame labels.

    ``convention``: ``pad_last`` labels the video's own frames and pads with the last label (LANP, masks);
    ``fill`` sets the intervals on a zero array of 16*T frames (RTFM). ``unlisted_normal``: a video absent from the
    annotation is normal (mask folders, CSV) rather than an error (UCF-Crime and Ped2 list every test video).
    """

    annotations: dict[str, VideoAnnotation]
    convention: Literal["pad_last", "fill"] = "pad_last"
    unlisted_normal: bool = False
    source: str = ""
    frame_counts: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def _annotation(self, video_id: str) -> VideoAnnotation | None:
        key = video_id if video_id in self.annotations else self.aliases.get(video_id)
        if key is not None:
            return self.annotations[key]
        if self.unlisted_normal:
            return None
        raise GroundTruthError(f"no ground truth for this video in {self.source}", video_id)

    def __contains__(self, video_id: object) -> bool:
        return video_id in self.annotations or video_id in self.aliases

    def video_label(self, video_id: str) -> int:
        """1 if the video holds any abnormal frame."""
        annotation = self._annotation(video_id)
        return int(annotation is not None and annotation.abnormal)

    def frame_labels_for(self, video_id: str, num_snippets: int, *, num_frames: int | None = None) -> np.ndarray:
        """0/1 uint8 labels of the 16*T frames a video of ``num_snippets`` feature snippets covers."""
        annotation = self._annotation(video_id)
        length = SNIPPET_LENGTH * num_snippets
        if annotation is None:
            return np.zeros(length, dtype=np.uint8)
        frames = self._frame_count(video_id, annotation, num_frames)
        if frames is not None:
            self._check_length(video_id, frames, num_snippets)
        limit = frames if frames is not None else length
        if annotation.mask is not None:
            labels = annotation.mask.astype(np.uint8)
        else:
            base = limit if self.convention == "pad_last" else length
            labels = np.zeros(base, dtype=np.uint8)
            for start, end in annotation.intervals:
                if start >= max(limit, length) or end > max(limit, length) + SNIPPET_LENGTH:
                    raise GroundTruthError(
                        f"abnormal interval [{start}, {end}) lies beyond the video's {limit} frames "
                        f"({num_snippets} snippets) in {self.source}",
                        video_id,
                    )
                labels[start:end] = 1
        if len(labels) >= length:
            return np.ascontiguousarray(labels[:length])
        return np.concatenate([labels, np.full(length - len(labels), labels[-1], dtype=np.uint8)])

    def snippet_labels_for(self, video_id: str, num_snippets: int, *, num_frames: int | None = None) -> np.ndarray:
        """0/1 per snippet: 1 when any of its 16 frames is abnormal."""
        frames = self.frame_labels_for(video_id, num_snippets, num_frames=num_frames)
        return frames.reshape(num_snippets, SNIPPET_LENGTH).max(axis=1)

    def labels_for(
        self, video_ids: Sequence[str], num_snippets: Sequence[int], num_frames: Sequence[int | None] | None = None
    ) -> np.ndarray:
        """Frame labels of several videos concatenated in the given order (the field's evaluation vector)."""
        counts = num_frames if num_frames is not None else [None] * len(video_ids)
        return np.concatenate(
            [
                self.frame_labels_for(video_id, length, num_frames=frames)
                for video_id, length, frames in zip(video_ids, num_snippets, counts, strict=True)
            ]
        )

    def _frame_count(self, video_id: str, annotation: VideoAnnotation, given: int | None) -> int | None:
        if annotation.mask is not None:
            return len(annotation.mask)
        if annotation.num_frames is not None:
            return annotation.num_frames
        return self.frame_counts.get(video_id, given)

    def _check_length(self, video_id: str, frames: int, num_snippets: int) -> None:
        """T may differ from the clean count by the padding rules in use (floor(n/16)+1 vs ceil), not more."""
        low, high = frames // SNIPPET_LENGTH - 1, -(-frames // SNIPPET_LENGTH) + 1
        if not low <= num_snippets <= high:
            raise GroundTruthError(
                f"ground truth has {frames} frames ({low}..{high} snippets of {SNIPPET_LENGTH} would fit) but the "
                f"features have {num_snippets} snippets; are the ground truth and the features of the same video?",
                video_id,
            )


def _strip_video_suffix(name: str) -> str:
    for suffix in (".mp4", ".avi", ".mkv", ".mov", ".webm", ".npy", ".mat"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_interval(start: int, end: int, video_id: str, source: str) -> tuple[int, int]:
    if start < 0 or end <= start:
        raise GroundTruthError(f"invalid abnormal interval [{start}, {end}) in {source}", video_id)
    return start, end


def _load_masks(folder: Path) -> GroundTruth:
    annotations = {}
    for path in sorted(folder.glob("*.npy")):
        mask = np.load(path, allow_pickle=False)
        if mask.ndim != 1 or mask.size == 0 or not np.isin(mask, (0, 1)).all():
            raise GroundTruthError(f"{path} is not a 1-D 0/1 frame mask (shape {mask.shape})", path.stem)
        annotations[path.stem] = VideoAnnotation(mask=mask.astype(np.uint8))
    if not annotations:
        raise GroundTruthError(f"no <video>.npy frame masks in {folder}")
    return GroundTruth(annotations, "pad_last", unlisted_normal=True, source=str(folder))


def _load_ucf_lanp(path: Path) -> GroundTruth:
    annotations = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 7:
            raise GroundTruthError(f"{path}:{number}: expected 'name class s1 e1 s2 e2 num_frames', got {line!r}")
        video_id = _strip_video_suffix(fields[0])
        try:
            s1, e1, s2, e2, frames = (int(value) for value in fields[2:])
        except ValueError as error:
            raise GroundTruthError(f"{path}:{number}: non-integer frame number ({error})", video_id) from error
        intervals = tuple(
            _check_interval(start, end, video_id, str(path)) for start, end in ((s1, e1), (s2, e2)) if start != -1
        )
        annotations[video_id] = VideoAnnotation(intervals=intervals, num_frames=frames)
    return GroundTruth(annotations, "pad_last", unlisted_normal=False, source=str(path))


def _load_ucf_rtfm(folder: Path) -> GroundTruth:
    from scipy.io import loadmat

    annotations = {}
    for path in sorted(folder.glob("*.mat")):
        try:
            record = loadmat(path)["Annotation_file"][0, 0]
            events = np.asarray(record["Anno"], dtype=np.int64).reshape(-1, 2)
        except (KeyError, IndexError, ValueError) as error:
            raise GroundTruthError(f"{path} is not an RTFM annotation file ({error})", path.stem) from error
        intervals = tuple(
            _check_interval(int(start), int(end) + 1, path.stem, str(path)) for start, end in events if start != -1
        )
        annotations[path.stem] = VideoAnnotation(intervals=intervals)
    if not annotations:
        raise GroundTruthError(f"no <video>.mat annotation files in {folder}")
    return GroundTruth(annotations, "fill", unlisted_normal=False, source=str(folder))


def _load_ped2(path: Path) -> GroundTruth:
    from scipy.io import loadmat

    try:
        cells = loadmat(path)["gt"].ravel()
    except KeyError as error:
        raise GroundTruthError(f"{path} has no 'gt' cell array (UCSD ped2.mat)") from error
    annotations, aliases = {}, {}
    for index, cell in enumerate(cells, start=1):
        bounds = np.asarray(cell, dtype=np.int64).reshape(2, -1)
        video_id = f"{index:02d}"
        intervals = tuple(
            _check_interval(int(start) - 1, int(end), video_id, str(path)) for start, end in bounds.T
        )
        annotations[video_id] = VideoAnnotation(intervals=intervals)
        aliases.update({f"Test{index:03d}": video_id, str(index): video_id})
    return GroundTruth(annotations, "pad_last", unlisted_normal=False, source=str(path), aliases=aliases)


def _csv_rows(path: Path, columns: int) -> list[tuple[int, list[str]]]:
    """Data rows of a small CSV with ``columns`` fields; a first row that is not numeric is a header."""
    rows = []
    with path.open(newline="") as stream:
        for number, row in enumerate(csv.reader(stream), start=1):
            row = [value.strip() for value in row]
            if not row or not any(row):
                continue
            if len(row) != columns:
                raise GroundTruthError(f"{path}:{number}: expected {columns} comma-separated fields, got {row}")
            if number == 1 and not re.fullmatch(r"-?\d+", row[-1]):
                continue
            rows.append((number, row))
    return rows


def _load_interval_csv(path: Path) -> GroundTruth:
    intervals: dict[str, list[tuple[int, int]]] = {}
    for number, (video_id, start, end) in _csv_rows(path, 3):
        try:
            first, last = int(start), int(end)
        except ValueError as error:
            raise GroundTruthError(f"{path}:{number}: non-integer frame number", video_id) from error
        listed = intervals.setdefault(video_id, [])
        if (first, last) != (-1, -1):
            listed.append(_check_interval(first, last, video_id, f"{path}:{number}"))
    annotations = {video_id: VideoAnnotation(intervals=tuple(sorted(spans))) for video_id, spans in intervals.items()}
    return GroundTruth(annotations, "pad_last", unlisted_normal=True, source=str(path))


def read_frame_counts(path: str | Path) -> dict[str, int]:
    """``video_id,num_frames`` (or a LANP ``name,label,num_frames`` split) -> {video_id: num_frames}."""
    path = Path(path)
    if not path.is_file():
        raise GroundTruthError(f"frame-count file {path} does not exist")
    first = next((line for line in path.read_text().splitlines() if line.strip()), "")
    counts = {}
    for number, row in _csv_rows(path, len(first.split(","))):
        try:
            counts[_strip_video_suffix(row[0])] = int(row[-1])
        except ValueError as error:
            raise GroundTruthError(f"{path}:{number}: frame count {row[-1]!r} is not an integer", row[0]) from error
    return counts


def detect_format(path: Path) -> str:
    """Guess the ground-truth format from what the path holds."""
    if path.is_dir():
        if any(path.glob("*.npy")):
            return "shanghaitech"
        if any(path.glob("*.mat")):
            return "ucf-rtfm"
        raise GroundTruthError(f"{path} holds neither .npy frame masks nor .mat annotation files")
    if path.suffix == ".mat":
        return "ped2"
    if path.suffix == ".csv":
        return "csv"
    if path.suffix == ".txt":
        return "ucf-lanp"
    raise GroundTruthError(f"cannot tell the ground-truth format of {path}; pass the format explicitly")


_LOADERS = {
    "shanghaitech": _load_masks,
    "ucf-lanp": _load_ucf_lanp,
    "ucf-rtfm": _load_ucf_rtfm,
    "ped2": _load_ped2,
    "csv": _load_interval_csv,
}


def load_ground_truth(path: str | Path, *, fmt: str = "auto", frames: str | Path | None = None) -> GroundTruth:
    """Read ground truth of any supported format; ``frames`` adds per-video frame counts."""
    path = Path(path)
    if not path.exists():
        raise GroundTruthError(f"ground truth {path} does not exist")
    if fmt not in GT_FORMATS:
        raise GroundTruthError(f"unknown ground-truth format {fmt!r}; choose one of {', '.join(GT_FORMATS)}")
    ground_truth = _LOADERS[detect_format(path) if fmt == "auto" else fmt](path)
    if frames is not None:
        ground_truth.frame_counts = read_frame_counts(frames)
    return ground_truth
