"""A live test source: serves a real clip as MPEG-TS over HTTP on 127.0.0.1 (or sends it over UDP with
``--udp HOST:PORT``), at real-time pace.

Run as a process (``python -m tests.pipeline.live.stream_source CLIP --port 0``): it prints ``PORT <n>`` once it
listens, then every ``GET`` gets the clip's video packets remuxed (not re-encoded, so decoded pixels equal the
file's) into MPEG-TS, each packet sent when its decode time comes, so a watcher sees what a camera would send.
``--loop`` repeats the clip for ever (timestamps keep increasing), for benchmarks. ``--die-after S`` kills the
process S seconds into its first stream (a camera that drops mid-way); start it again on the same port to let a
watcher reconnect.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import BinaryIO

import av


class _Unbuffered:
    """A write-only file for PyAV's muxer that pushes every write to the socket at once."""

    def __init__(self, sink: BinaryIO):
        self.sink = sink

    def write(self, data: bytes) -> int:
        self.sink.write(data)
        self.sink.flush()
        return len(data)


def stream_clip(clip: Path, sink: BinaryIO, *, loop: bool = False, speed: float = 1.0) -> None:
    """Remux ``clip``'s video packets into MPEG-TS on ``sink``, each at its decode time (``speed`` x real time)."""
    started = time.monotonic()
    offset = 0.0
    with av.open(_Unbuffered(sink), mode="w", format="mpegts", buffer_size=4096) as output:
        while True:
            with av.open(str(clip)) as source:
                video = source.streams.video[0]
                if not output.streams.video:
                    out = output.add_stream_from_template(video)
                time_base = float(video.time_base)
                last = 0.0
                for packet in source.demux(video):
                    if packet.dts is None:
                        continue
                    due = offset + packet.dts * time_base
                    delay = started + due / speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    shift = round(offset / time_base)
                    packet.pts = None if packet.pts is None else packet.pts + shift
                    packet.dts += shift
                    last = max(last, packet.pts * time_base if packet.pts is not None else due - offset)
                    packet.stream = out
                    output.mux(packet)
                offset += last + 1.0 / float(video.average_rate or 25)
            if not loop:
                return


def serve(clip: Path, port: int, *, loop: bool, speed: float, die_after_s: float | None = None) -> None:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            self.send_response(200)
            self.send_header("Content-Type", "video/mp2t")
            self.send_header("Connection", "close")
            self.end_headers()
            if die_after_s is not None:
                threading.Timer(die_after_s, os._exit, args=(3,)).start()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, av.error.FFmpegError):
                stream_clip(clip, self.wfile, loop=loop, speed=speed)  # FFmpegError: the client went away

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever()


def send_udp(clip: Path, address: str, *, loop: bool, speed: float) -> None:
    """Push the clip as MPEG-TS to ``address`` (host:port), one datagram per write of the muxer (at most 4 KiB)."""
    host, _, port = address.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:

        class Datagrams:
            def write(self, data: bytes) -> int:
                sender.sendto(data, (host, int(port)))
                return len(data)

            def flush(self) -> None:
                pass

        stream_clip(clip, Datagrams(), loop=loop, speed=speed)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("clip", type=Path)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed)")
    parser.add_argument("--loop", action="store_true", help="repeat the clip for ever")
    parser.add_argument("--speed", type=float, default=1.0, help="pace relative to real time")
    parser.add_argument("--die-after", type=float, metavar="SECONDS",
                        help="kill this process that long after the first request (a camera that drops mid-way)")
    parser.add_argument("--udp", metavar="HOST:PORT", help="send to this UDP address instead of serving HTTP")
    args = parser.parse_args(argv)
    if args.udp:
        send_udp(args.clip, args.udp, loop=args.loop, speed=args.speed)
        return
    serve(args.clip, args.port, loop=args.loop, speed=args.speed, die_after_s=args.die_after)


if __name__ == "__main__":
    sys.exit(main())
