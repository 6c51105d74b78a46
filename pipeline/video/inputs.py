"""Turning what a user types (files, folders, glob patterns, frame folders, lists of paths) into videos.

Used by ``lanp score`` and ``lanp extract``, so both commands accept the same inputs and give a video the same
id.

Rules, applied to each input in order:
- a text file (``.txt``, ``.list``, ``.lst``) is a list of inputs, one a line; blank lines and ``#`` comments
  are ignored; relative lines are relative to the list's folder; lines may be files, folders or glob patterns;
- a folder is searched recursively: files with a video extension are videos, and a folder that directly holds
  image files (``.jpg``, ``.png``, ...) is one video made of frames (it is not searched further);
- a pattern with ``*``, ``?`` or ``[`` is expanded (``**`` spans folders): matching folders are searched as
  above, matching files are videos when they have a video extension or the extension the pattern spells out
  (``'calls/*.m4a'`` names its files as surely as typing them: they are reported, not dropped), and skipped
  otherwise;
- a file named explicitly (on the command line or in a list) is taken as a video whatever its extension: the
  decoder decides, and a file that is not a video is then reported as a failed video rather than dropped.

Video ids are file names without extension, or for videos found in a folder their path relative to that
folder with ``/`` written ``__`` (so ``train/01.mp4`` and ``test/01.mp4`` under one folder are ``train__01`` and
``test__01``). Ids are made safe as file names. Two different videos that would still share an id (two folders
given, each with a ``01.mp4``) take the names of the folders above them until they differ, so the same readable
``train__01`` / ``test__01``; only names that clash even then get a short hash of their path. The same file
reached twice (say by a folder and a pattern) is listed once.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lanp_vad.models.errors import ErrorKind, UserError

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
     ".3gp", ".ogv", ".dav", ".h264", ".hevc"}
)
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
LIST_EXTENSIONS = frozenset({".txt", ".list", ".lst"})
_GLOB_CHARACTERS = re.compile(r"[*?\[]")
_UNSAFE_ID_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")
MAX_PARENTS_IN_ID = 8  # folders an id may take from above its path to tell two videos apart


class InputError(UserError):
    """An input names nothing usable (missing path, pattern without matches, folder without videos)."""

    kind = ErrorKind.INVALID_INPUT

    def __init__(self, message: str, item: str):
        super().__init__(f"{item}: {message}")
        self.item = item


@dataclass(frozen=True)
class VideoInput:
    """One video to process: a file, or a folder of frame images (``is_frame_folder``)."""

    video_id: str
    path: Path
    is_frame_folder: bool = False


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _is_frame_folder(folder: Path) -> bool:
    try:
        return any(entry.is_file() and _is_image(Path(entry.name)) for entry in os.scandir(folder))
    except OSError:
        return False


def _safe_id(text: str) -> str:
    safe = _UNSAFE_ID_CHARACTERS.sub("_", text).strip("._")
    return safe or "video"


def _relative_id(path: Path, root: Path) -> str:
    relative = path.relative_to(root)
    parts = [*relative.parent.parts, relative.stem if path.is_file() else relative.name]
    return "__".join(part for part in parts if part)


def _scan_folder(root: Path) -> tuple[list[tuple[str, Path, bool]], list[Path]]:
    """Videos under ``root`` as (id relative to it, path, is frame folder), and the files skipped; sorted."""
    if _is_frame_folder(root):
        return [(root.resolve().name, root, True)], []
    found: list[tuple[str, Path, bool]] = []
    skipped: list[Path] = []
    visited: set[Path] = set()
    for directory, subdirectories, files in os.walk(root, followlinks=True):
        current = Path(directory)
        real = current.resolve()
        if real in visited:  # a symlink loop: do not walk the same folder twice
            subdirectories.clear()
            continue
        visited.add(real)
        subdirectories[:] = sorted(name for name in subdirectories if not name.startswith("."))
        frame_folders = [name for name in subdirectories if _is_frame_folder(current / name)]
        for name in frame_folders:
            found.append((_relative_id(current / name, root), current / name, True))
        subdirectories[:] = [name for name in subdirectories if name not in frame_folders]
        for name in sorted(files):
            path = current / name
            if name.startswith("."):
                continue
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                found.append((_relative_id(path, root), path, False))
            else:
                skipped.append(path)
    return found, skipped


def _spelled_out(pattern: str, match: Path) -> bool:
    """Whether ``pattern`` names ``match``'s extension literally (``*.m4a``), so the user asked for such files."""
    suffix = Path(pattern).suffix.lower()
    return (bool(suffix) and not _GLOB_CHARACTERS.search(suffix) and suffix == match.suffix.lower()
            and suffix not in LIST_EXTENSIONS)


class _Expander:
    """Accumulates videos across inputs, keeping first-seen order and one entry per real path."""

    def __init__(self) -> None:
        self.candidates: list[tuple[str, Path, bool]] = []
        self.skipped: list[Path] = []
        self._seen: set[Path] = set()

    def add(self, video_id: str, path: Path, is_frame_folder: bool) -> None:
        real = path.resolve()
        if real not in self._seen:
            self._seen.add(real)
            self.candidates.append((_safe_id(video_id), path, is_frame_folder))

    def expand(self, item: str, *, base: Path | None = None, from_list: str | None = None) -> None:
        where = f"{from_list}: " if from_list else ""
        path = Path(item).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        if _GLOB_CHARACTERS.search(item) and not path.exists():
            matches = sorted(glob.glob(str(path), recursive=True))
            if not matches:
                raise InputError("the pattern matches no file or folder", f"{where}{item}")
            for match in map(Path, matches):
                if match.is_dir() or match.suffix.lower() in VIDEO_EXTENSIONS or _spelled_out(item, match):
                    self._take(match, item, where, allow_list=False)
                else:
                    self.skipped.append(match)
            return
        if not path.exists():
            raise InputError("no such file or folder", f"{where}{item}")
        self._take(path, item, where, allow_list=from_list is None)

    def _take(self, path: Path, item: str, where: str, *, allow_list: bool) -> None:
        if path.is_dir():
            found, skipped = _scan_folder(path)
            if not found:
                raise InputError("the folder holds no video files or frame folders", f"{where}{item}")
            for video_id, video_path, is_frame_folder in found:
                self.add(video_id, video_path, is_frame_folder)
            self.skipped.extend(skipped)
        elif path.suffix.lower() in LIST_EXTENSIONS:
            if not allow_list:
                raise InputError("lists of paths cannot name other lists", f"{where}{item}")
            self._read_list(path)
        else:
            self.add(path.stem, path, False)

    def _read_list(self, list_file: Path) -> None:
        try:
            lines = list_file.read_text().splitlines()
        except UnicodeDecodeError as error:
            raise InputError(f"not a text list of paths ({error.reason})", str(list_file)) from error
        for number, line in enumerate(lines, start=1):
            entry = line.strip()
            if entry and not entry.startswith("#"):
                self.expand(entry, base=list_file.parent, from_list=f"{list_file}:{number}")


def _with_parents(video_id: str, path: Path, parents: int) -> str:
    """``video_id`` with the names of ``parents`` more of the folders above the part of ``path`` it spells."""
    spelled = video_id.count("__") + 1  # the path components the id already holds (the file and its folders)
    above = path.resolve().parents[spelled - 1:spelled - 1 + parents]
    return _safe_id("__".join([*(folder.name for folder in reversed(above)), video_id]))


def _disambiguate(candidates: list[tuple[str, Path, bool]]) -> list[VideoInput]:
    """Ids that two different videos share take the names of the folders above them, one at a time, until they
    differ (``train/01.mp4`` and ``test/01.mp4`` given as two folders: ``train__01`` and ``test__01``); names
    that still clash (``a__b/c`` and ``a/b__c``) get a short hash of their path."""
    ids = [video_id for video_id, _, _ in candidates]
    for parents in range(1, MAX_PARENTS_IN_ID + 1):
        counts = Counter(ids)
        clashing = [index for index, video_id in enumerate(ids) if counts[video_id] > 1]
        if not clashing:
            break
        for index in clashing:
            video_id, path, _ = candidates[index]
            ids[index] = _with_parents(video_id, path, parents)
    counts = Counter(ids)
    videos = []
    for video_id, (_, path, is_frame_folder) in zip(ids, candidates, strict=True):
        if counts[video_id] > 1:
            video_id = f"{video_id}-{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        videos.append(VideoInput(video_id, path, is_frame_folder))
    return videos


def expand_inputs(inputs: Sequence[str | Path] | Iterable[str | Path]) -> list[VideoInput]:
    """The videos named by ``inputs`` (see the module docstring), in input order; raises InputError."""
    expander = _Expander()
    items = [str(item) for item in inputs]
    if not items:
        raise InputError("no inputs given", "INPUT")
    for item in items:
        expander.expand(item)
    if expander.skipped:
        names = ", ".join(path.name for path in expander.skipped[:5])
        more = f" and {len(expander.skipped) - 5} more" if len(expander.skipped) > 5 else ""
        log.info("skipped %d file(s) without a video extension: %s%s", len(expander.skipped), names, more)
    return _disambiguate(expander.candidates)
