"""``lanp segments``: recompute the events of stored results at another threshold or with other segment rules.

RESULTS is one result document (``lanp score``'s JSON, a job's ``result.json``: the new document is printed on
stdout, ``--plot`` draws it) or a ``lanp score --out`` folder (every ``videos/<id>.json`` rewritten, then
``segments.csv``, ``summary.csv``, ``snippets.parquet``, the plots it has (all with ``--plots``) and the event
evidence). Nothing is decoded and no model is loaded: it takes seconds. Options left out keep their defaults
(threshold: the model's, recorded in each document); the options in force are recorded in the documents
(``threshold``, ``segment_config``) and in ``run.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lanp_vad.cli.score import (
    add_event_arguments,
    add_evidence_arguments,
    plotter,
    print_warnings,
    resegment_folder,
    scoring_config,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segments", help="recompute events from stored results (no decoding)", description=__doc__,
    )
    parser.add_argument("results", metavar="RESULTS", help="a result JSON or a lanp score --out folder")
    parser.add_argument("--plots", action="store_true", help="folder: draw plots/<id>.png for every video")
    parser.add_argument("--plot", metavar="PNG", help="one document: draw its score curve here")
    add_event_arguments(parser)
    add_evidence_arguments(parser)
    parser.set_defaults(handler=run)


def _one_document(args: argparse.Namespace, path: Path) -> int:
    from lanp_vad.models.errors import UserError
    from lanp_vad.pipeline.scoring.result import parse_document, resegment

    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not JSON: {error}") from None
    updated = resegment(document, scoring_config(args))
    if args.plot:
        Path(args.plot).write_bytes(plotter(args)(parse_document(updated)))
    print_warnings(updated, str(path))
    json.dump(updated, sys.stdout)
    sys.stdout.write("\n")
    return 0


def run(args: argparse.Namespace) -> int:
    from lanp_vad.models.errors import UserError

    path = Path(args.results)
    if path.is_dir():
        if args.plot:
            raise UserError("--plot is for one document; a folder's plots are plots/<id>.png (--plots)")
        return resegment_folder(args, path)
    if not path.is_file():
        raise UserError(f"{path}: no such file or folder")
    if args.plots:
        raise UserError("--plots is for a lanp score --out folder; one document: --plot FILE.png")
    return _one_document(args, path)
