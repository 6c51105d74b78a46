"""``lanp serve``: the HTTP scoring service (FastAPI + uvicorn) for one model directory."""

from __future__ import annotations

import argparse
import os


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve a model over HTTP (POST /score, /jobs, /metrics, ...)",
        description="Serve a model directory over HTTP. Every LANP_* environment setting applies "
        "(see docs/deployment.md); the options here override LANP_MODEL_DIR and LANP_DEVICE. The model is loaded "
        "and warmed up before the port opens; a bad model directory is refused in one line (exit 2).",
    )
    parser.add_argument("--model", help="model directory (default: $LANP_MODEL_DIR)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N (default: $LANP_DEVICE or auto)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from lanp_vad.models.errors import UserError
    from lanp_vad.service.app import load_scorer
    from lanp_vad.service.server import limit_malloc_arenas, serve
    from lanp_vad.service.settings import Settings

    limit_malloc_arenas()  # before the model loads and its threads start

    overrides = {key: value for key, value in (("model_dir", args.model), ("device", args.device)) if value}
    if "model_dir" not in overrides and not os.environ.get("LANP_MODEL_DIR"):
        raise UserError("no model: pass --model DIR or set LANP_MODEL_DIR")
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        problems = "; ".join(f"LANP_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors())
        raise UserError(f"invalid setting: {problems}", kind="invalid_config") from error
    try:
        scorer = load_scorer(settings)
    except UserError as error:  # a bad model directory: one line (its message may quote a multi-line parser error)
        raise UserError(" ".join(str(error).split()), kind=error.kind) from error
    serve(settings, scorer, host=args.host, port=args.port, log_level=args.log_level)
    return 0
