"""``lanp watch``: score a live stream (RTSP, HTTP / HLS / MJPEG, UDP, SRT, a device, a growing file) as it plays.

Writes JSON lines to stdout (or ``--out FILE``): a ``start`` record, then per snippet its score with stream and
wall-clock time, ``event_start`` / ``event_end`` records (offline scoring's segment rules; the end carries a JPEG
thumbnail of the peak snippet), ``dropped`` when inference falls behind, ``disconnected`` / ``reconnecting`` when
the connection drops, and ``stopped`` at the end. Ctrl-C or SIGTERM ends cleanly. Exit status 0; 1 when the
source could never be reached; 2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from lanp_vad.cli import positive
from lanp_vad.cli.score import unit_interval


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watch", help="score a live stream as it plays (JSON lines)", description=__doc__,
    )
    parser.add_argument("source", metavar="SOURCE",
                        help="rtsp://, http(s)://, udp://, srt://... URL, a device or a (growing) file")
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="a model directory (lanp train)")
    parser.add_argument("--out", metavar="FILE", help="append the JSON lines here instead of stdout")
    parser.add_argument("--threshold", type=unit_interval, help="event threshold in [0, 1] (default: the model's)")
    parser.add_argument("--thumbnails", metavar="DIR", help="write event thumbnails here (default: inline base64)")
    parser.add_argument("--device", default="auto", help="auto (GPU when present), cpu, cuda or cuda:N")
    parser.add_argument("--backlog", type=positive(int), default=4, metavar="SNIPPETS",
                        help="snippets waiting for inference before the oldest is dropped")
    parser.add_argument("--threads", type=positive(int), metavar="N",
                        help="torch threads for inference (default: torch's; 1 when many streams share the CPUs)")
    parser.add_argument("--format", help="FFmpeg input format, e.g. v4l2 for a camera device")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an FFmpeg input option, e.g. rtsp_transport=tcp (repeatable)")
    parser.add_argument("--read-timeout", type=positive(float), default=10.0, metavar="SECONDS",
                        help="a connection silent this long counts as dropped")
    parser.add_argument("--max-reconnects", type=int, metavar="N",
                        help="give up after N failed attempts in a row (default: never)")
    parser.add_argument("--reconnect-max", type=positive(float), default=30.0, metavar="SECONDS",
                        help="the longest wait between attempts (waits double from 0.5 s)")
    parser.set_defaults(handler=run)


def _options(pairs: list[str]) -> dict[str, str]:
    from lanp_vad.models.errors import UserError

    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise UserError(f"--option {pair!r}: expected KEY=VALUE")
        options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    from lanp_vad.pipeline.live.source import SourceConfig
    from lanp_vad.pipeline.live.watcher import WatchConfig, Watcher
    from lanp_vad.pipeline.scoring.config import ScoringConfig
    from lanp_vad.pipeline.scoring.scorer import Scorer

    config = WatchConfig(
        source=SourceConfig(read_timeout_s=args.read_timeout, max_reconnects=args.max_reconnects,
                            reconnect_max_s=args.reconnect_max, format=args.format, options=_options(args.option)),
        backlog_snippets=args.backlog, threshold=args.threshold, thumbnails_dir=args.thumbnails,
    )
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    scorer = Scorer.from_model_dir(args.model, device=args.device, config=ScoringConfig(decode_timeout_s=None))
    out = sys.stdout if args.out is None else open(args.out, "a", encoding="utf-8")  # noqa: SIM115 (closed below)
    lock = threading.Lock()

    def emit(record: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(record) + "\n")
            out.flush()

    try:
        watcher = Watcher(scorer, args.source, emit, config)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: watcher.stop())
        return watcher.run()
    finally:
        if out is not sys.stdout:
            out.close()
