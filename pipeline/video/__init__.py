"""Video in: container sniffing, decoding (PyAV / decord / frame folders), snippet plans, input expansion and the
torch-free decode worker process. May import ``models.errors`` and the shared plumbing only: no torch here, so
decode workers stay small.

Modules, bottom up: ``sniff`` (container type from the first bytes), ``errors`` (one class per kind of bad
video), ``container`` (the source, FFmpeg's container and its header checks), ``reader`` (``VideoInfo``, the
reader interface, sizes and scaling), ``pyav_reader`` / ``decord_reader`` / ``folder_reader``, ``decode``
(``open_video``), ``snippets``, ``inputs`` and ``worker`` (the decode worker process and its protocol).
"""

from lanp_vad.pipeline.video.container import DEFAULT_MAX_PIXELS, MAX_SIDE
from lanp_vad.pipeline.video.decode import Backend, open_video
from lanp_vad.pipeline.video.errors import (
    CorruptVideoError,
    DecodeTimeoutError,
    EmptyFileError,
    NotAVideoError,
    NoVideoStreamError,
    ResolutionTooLargeError,
    UnsupportedCodecError,
    VideoError,
)
from lanp_vad.pipeline.video.reader import VideoInfo, VideoReader
from lanp_vad.pipeline.video.sniff import sniff_container

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "MAX_SIDE",
    "Backend",
    "CorruptVideoError",
    "DecodeTimeoutError",
    "EmptyFileError",
    "NoVideoStreamError",
    "NotAVideoError",
    "ResolutionTooLargeError",
    "UnsupportedCodecError",
    "VideoError",
    "VideoInfo",
    "VideoReader",
    "open_video",
    "sniff_container",
]
