"""Container sniffing: what kind of media a file is from its first bytes, before FFmpeg opens it.

The service uses it to refuse non-video uploads (415) cheaply; the decoder uses it to tell a damaged container
(a known magic number FFmpeg cannot open: ``corrupt``) from bytes that are no video at all (``not_video``).
"""

from __future__ import annotations

_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (4, b"ftyp", "mp4"),
    (4, b"moov", "mov"),
    (4, b"mdat", "mov"),
    (4, b"wide", "mov"),
    (4, b"free", "mov"),
    (0, b"\x1a\x45\xdf\xa3", "matroska"),
    (0, b"FLV\x01", "flv"),
    (0, b"\x00\x00\x01\xba", "mpeg-ps"),
    (0, b"\x00\x00\x01\xb3", "mpeg-video"),
    (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf"),
    (0, b"OggS", "ogg"),
    (0, b"\x00\x00\x00\x01\x67", "h264-annexb"),
    (0, b"\x00\x00\x00\x01\x40", "hevc-annexb"),
    (0, b"\x00\x00\x00\x01\x09", "h264-annexb"),
    (0, b"DKIF", "ivf"),
    (0, b"GIF8", "gif"),
)
MPEG_TS_PACKET = 188


def sniff_container(head: bytes) -> str | None:
    """The container type from a file's first bytes (at least 16; 376 to recognise MPEG-TS), or None.

    Recognises mp4/mov, matroska/webm, avi, flv, MPEG-PS/TS, ASF/WMV, Ogg, raw H.264/HEVC, IVF and GIF; WAV
    and other RIFF types are reported as such, so a caller can tell audio from video (``"wav"`` is not a video).
    """
    if head[:4] == b"RIFF" and len(head) >= 12:
        return {b"AVI ": "avi", b"WAVE": "wav"}.get(head[8:12], "riff")
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if head[:1] == b"\x47" and all(head[i] == 0x47 for i in range(MPEG_TS_PACKET, len(head), MPEG_TS_PACKET)):
        return "mpeg-ts" if len(head) > MPEG_TS_PACKET else None
    return None
