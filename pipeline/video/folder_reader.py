"""A folder of frame images as a video (ShanghaiTech's test set): files sorted in natural order, a given rate."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from lanp_vad.pipeline.video.container import check_resolution
from lanp_vad.pipeline.video.errors import CorruptVideoError, NotAVideoError
from lanp_vad.pipeline.video.reader import VideoReader, build_info, output_size, scale_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_FOLDER_FPS = 25.0
"""Frame rate given to a folder of frame images when none is passed: 25 fps, the PAL rate of most surveillance
cameras. It only sets timestamps; snippets and scores are counted in frames. Pass ``folder_fps`` when the source
rate is known (UCSD Ped2: 10)."""


def natural_key(path: Path) -> list[int | str]:
    """Sort key that puts frame 2 before frame 10 even without zero padding."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


class FolderReader(VideoReader):
    """Frame images of one size, scaled with the video readers' swscale filter when a limit asks for it."""

    def __init__(
        self,
        folder: Path,
        *,
        target_fps: float | None,
        max_side: int | None,
        max_short_side: int | None,
        max_pixels: int,
        folder_fps: float,
    ) -> None:
        self._files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()), key=natural_key
        )
        if not self._files:
            raise NotAVideoError(f"{folder}: the folder holds no frame images ({', '.join(IMAGE_SUFFIXES)})")
        self._size = self._image_size(self._files[0])
        check_resolution(str(folder), *self._size, max_pixels)
        self.info = build_info(
            name=str(folder),
            backend="images",
            count=len(self._files),
            fps=folder_fps,
            timestamps=None,
            size=self._size,
            out_size=output_size(*self._size, max_side, max_short_side),
            target_fps=target_fps,
            codec=None,
            container="images",
        )

    @staticmethod
    def _image_size(path: Path) -> tuple[int, int]:
        try:
            with Image.open(path) as image:
                return image.size
        except OSError as error:
            raise CorruptVideoError(f"{path}: not a readable image: {error}") from error

    def _decode_source_frames(self, source_indices: np.ndarray) -> np.ndarray:
        return np.stack([self._load(self._files[int(i)]) for i in source_indices])

    def _load(self, path: Path) -> np.ndarray:
        try:
            with Image.open(path) as image:
                if image.size != self._size:
                    raise CorruptVideoError(
                        f"{path}: frame size {image.size[0]}x{image.size[1]} differs from the first frame's "
                        f"{self._size[0]}x{self._size[1]}"
                    )
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
        except OSError as error:
            raise CorruptVideoError(f"{path}: not a readable image: {error}") from error
        return scale_rgb(pixels[None], self.info.width, self.info.height)[0]
