"""Feature sets: reading the layouts users have, and the store the extractor writes.

Layouts read by ``open_feature_set``:
- a folder of ``<video_id>.npy`` files, shape (T, D) or (T, crops, D), optionally with the store's
  ``manifest.jsonl`` and ``feature_spec.json`` (what ``lanp extract`` writes);
- an RTFM-style ``.list`` file of feature paths (the authors' absolute paths are reduced to file names and looked
  up in ``feature_dir``, default the list's folder);
- a LANP-style split ``name,label,num_frames`` (``.txt`` / ``.csv``) with ``feature_dir`` and a file ``suffix``.
"""

from __future__ import annotations

import glob
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.spec import SPEC_FILE, FeatureSpec, SpecMismatchError
from lanp_vad.pipeline.files import append_jsonl, atomic_write_bytes, read_jsonl

MANIFEST_FILE = "manifest.jsonl"
FEATURE_SUFFIXES = ("_i3d.npy", "_res.npy", ".npy")


class FeatureSetError(UserError):
    """A feature set cannot be used; names the video (when one is to blame) and what is wrong."""

    kind = ErrorKind.INVALID_FEATURES

    def __init__(self, message: str, video_id: str | None = None):
        super().__init__(f"{video_id}: {message}" if video_id else message)
        self.video_id = video_id


@dataclass(frozen=True)
class VideoEntry:
    """One video of a feature set. ``label`` is ground truth from the layout, never used for training."""

    video_id: str
    path: Path
    label: int | None = None
    num_frames: int | None = None


def check_features(features: np.ndarray, video_id: str) -> np.ndarray:
    """Validate one video's features: float, (T, D) or (T, crops, D), T >= 1, finite. Returns float32."""
    if features.ndim not in (2, 3):
        raise FeatureSetError(f"features must be (T, D) or (T, crops, D), got shape {features.shape}", video_id)
    if features.shape[0] < 1 or features.shape[-1] < 1:
        raise FeatureSetError(f"empty features of shape {features.shape}", video_id)
    if not np.issubdtype(features.dtype, np.number):
        raise FeatureSetError(f"features have non-numeric dtype {features.dtype}", video_id)
    features = np.ascontiguousarray(features, dtype=np.float32)
    if not np.isfinite(features).all():
        bad = np.argwhere(~np.isfinite(features).reshape(features.shape[0], -1).all(axis=1)).ravel()
        raise FeatureSetError(f"NaN or inf in snippets {bad[:10].tolist()} (of {features.shape[0]})", video_id)
    return features


class FeatureSet:
    """An ordered collection of per-video feature files with one feature spec."""

    def __init__(self, entries: list[VideoEntry], spec: FeatureSpec | None = None, *, source: str = ""):
        if not entries:
            raise FeatureSetError(f"no feature files found in {source or 'the feature set'}")
        ids = [entry.video_id for entry in entries]
        if len(set(ids)) != len(ids):
            duplicated = sorted({video_id for video_id in ids if ids.count(video_id) > 1})
            raise FeatureSetError(f"duplicate video ids in {source}: {', '.join(duplicated[:5])}")
        self.entries = entries
        self.source = source
        self._spec = spec
        self._index = {entry.video_id: entry for entry in entries}

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[VideoEntry]:
        return iter(self.entries)

    @property
    def video_ids(self) -> list[str]:
        return [entry.video_id for entry in self.entries]

    def entry(self, video_id: str) -> VideoEntry:
        return self._index[video_id]

    def load(self, video_id: str) -> np.ndarray:
        """One video's validated float32 features, (T, D) or (T, crops, D)."""
        entry = self._index[video_id]
        try:
            features = np.load(entry.path, allow_pickle=False, mmap_mode="r")
        except FileNotFoundError as error:
            raise FeatureSetError(f"feature file {entry.path} is missing", video_id) from error
        except ValueError as error:
            raise FeatureSetError(f"{entry.path} is not a plain .npy array ({error})", video_id) from error
        return check_features(np.asarray(features), video_id)

    def load_all(self, *, average_crops: bool = False) -> list[np.ndarray]:
        """All videos in order, with one feature dimension and crop count across the set (else a clear error)."""
        arrays: list[np.ndarray] = []
        first: tuple[str, tuple[int, ...]] | None = None
        for entry in self.entries:
            features = self.load(entry.video_id)
            layout = features.shape[1:]
            if first is None:
                first = (entry.video_id, layout)
            elif layout != first[1]:
                raise FeatureSetError(
                    f"per-snippet shape {layout} differs from {first[1]} of {first[0]} (mixed feature dimensions)",
                    entry.video_id,
                )
            arrays.append(features.mean(axis=1) if average_crops and features.ndim == 3 else features)
        return arrays

    @property
    def spec(self) -> FeatureSpec:
        """The stored spec, or an ``external`` spec inferred from the first file."""
        if self._spec is None:
            sample = np.load(self.entries[0].path, mmap_mode="r", allow_pickle=False)
            crops = sample.shape[1] if sample.ndim == 3 else 1
            if crops not in (1, 10):
                raise FeatureSetError(f"unsupported crop count {crops}", self.entries[0].video_id)
            self._spec = FeatureSpec.external(dim=int(sample.shape[-1]), crops=crops)
        return self._spec


def _video_id_from_file(name: str) -> str:
    for suffix in FEATURE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _base_name(listed: str) -> str:
    """The file name of a listed path, whether it was written on Windows or POSIX."""
    return listed.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def read_jsonl_records(path: Path) -> list[dict[str, Any]]:
    """The per-video records of an append-only JSONL manifest, in order (a torn last line is ignored)."""
    return [record for record in read_jsonl(path) if "video_id" in record]


def _read_manifest(path: Path) -> dict[str, dict[str, Any]]:
    """Latest record per video (later lines win)."""
    return {record["video_id"]: record for record in read_jsonl_records(path)}


def _open_folder(folder: Path) -> FeatureSet:
    manifest = _read_manifest(folder / MANIFEST_FILE)
    spec = FeatureSpec.load(folder) if (folder / SPEC_FILE).exists() else None
    entries = []
    for path in sorted(folder.glob("*.npy")):
        video_id = path.stem if manifest else _video_id_from_file(path.name)
        record = manifest.get(video_id)
        if manifest and (record is None or record.get("status") != "ok"):
            continue  # a file the store did not finish (or a failed video): not part of the set
        entries.append(VideoEntry(video_id, path, num_frames=record.get("num_frames") if record else None))
    return FeatureSet(entries, spec, source=str(folder))


def _open_list(list_file: Path, feature_dir: Path | None) -> FeatureSet:
    search_dir = feature_dir or list_file.parent
    entries = []
    for line in list_file.read_text().splitlines():
        listed = line.strip()
        if not listed:
            continue
        path = Path(listed) if Path(listed).is_file() else search_dir / _base_name(listed)
        entries.append(VideoEntry(_video_id_from_file(_base_name(listed)), path))
    return FeatureSet(entries, None, source=str(list_file))


def _open_split(split_file: Path, feature_dir: Path | None, suffix: str | None) -> FeatureSet:
    if feature_dir is None:
        raise FeatureSetError(f"split file {split_file} needs --feature-dir: the folder of the feature files")
    entries = []
    for number, line in enumerate(split_file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 3:
            raise FeatureSetError(f"{split_file}:{number}: expected name,label,num_frames, got {line!r}")
        name, label, frames = fields
        candidates = [suffix] if suffix is not None else list(FEATURE_SUFFIXES)
        path = next(
            (feature_dir / f"{name}{s}" for s in candidates if (feature_dir / f"{name}{s}").exists()),
            feature_dir / f"{name}{candidates[0]}",
        )
        entries.append(VideoEntry(name, path, label=int(label), num_frames=int(frames)))
    return FeatureSet(entries, None, source=str(split_file))


def open_feature_set(
    path: str | Path, *, feature_dir: str | Path | None = None, suffix: str | None = None
) -> FeatureSet:
    """Open any supported layout (see the module docstring). Files are read lazily by ``FeatureSet.load``."""
    path = Path(path)
    directory = Path(feature_dir) if feature_dir is not None else None
    if path.is_dir():
        return _open_folder(path)
    if not path.exists():
        raise FeatureSetError(f"{path} does not exist")
    if path.suffix == ".list":
        return _open_list(path, directory)
    if path.suffix in (".txt", ".csv"):
        return _open_split(path, directory, suffix)
    raise FeatureSetError(f"{path}: expected a folder of .npy files, an RTFM .list or a name,label,frames split")


class FeatureStore:
    """The folder ``lanp extract`` writes: ``<video_id>.npy`` + ``manifest.jsonl`` + ``feature_spec.json``.

    Each video's array is written atomically before its manifest line, so a killed run leaves no half-written
    feature that a resumed run or the trainer would take for finished.
    """

    def __init__(self, root: str | Path, spec: FeatureSpec):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        if (self.root / SPEC_FILE).exists():
            FeatureSpec.load(self.root).check_compatible(spec, what="feature store", other_what="extractor")
        else:
            spec.save(self.root)
        self.spec = spec
        self._manifest_path = self.root / MANIFEST_FILE
        self._records = _read_manifest(self._manifest_path)

    def status(self, video_id: str) -> str | None:
        record = self._records.get(video_id)
        return record.get("status") if record else None

    def is_done(self, video_id: str) -> bool:
        return self.status(video_id) == "ok" and (self.root / f"{video_id}.npy").exists()

    def records(self) -> dict[str, dict[str, Any]]:
        return dict(self._records)

    def _append(self, record: dict[str, Any]) -> None:
        record = {**record, "spec_hash": self.spec.digest(), "time": time.time()}
        append_jsonl(self._manifest_path, record)
        self._records[record["video_id"]] = record

    def write(self, video_id: str, features: np.ndarray, **info: Any) -> Path:
        """Store one video's features (validated) and mark it done; ``info`` goes into the manifest."""
        features = check_features(features, video_id)
        buffer = io.BytesIO()
        np.save(buffer, features)
        path = self.root / f"{video_id}.npy"
        for stale in self.root.glob(f".{glob.escape(path.name)}.*.tmp"):  # a killed run's half-written copy
            stale.unlink(missing_ok=True)
        atomic_write_bytes(path, buffer.getvalue())
        self._append({"video_id": video_id, "status": "ok", "num_snippets": int(features.shape[0]), **info})
        return path

    def fail(self, video_id: str, error: str, **info: Any) -> None:
        """Record why a video could not be processed; the run goes on."""
        self._append({"video_id": video_id, "status": "failed", "error": error, **info})


def check_spec_match(model_spec: FeatureSpec, features: FeatureSet) -> None:
    """Refuse to apply a model to features of another kind (dimension always; full spec when both are known)."""
    if model_spec.dim != features.spec.dim:
        raise SpecMismatchError(
            f"the model expects {model_spec.dim}-d features but {features.source} holds {features.spec.dim}-d ones"
        )
    if "external" not in (model_spec.weights, features.spec.weights):
        model_spec.check_compatible(features.spec, what="model", other_what=f"feature set {features.source}")
