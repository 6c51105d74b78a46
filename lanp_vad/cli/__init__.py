"""The ``lanp`` command line: one sub-module per command, each a thin shell over pipeline functions.

Each command module defines ``register(subparsers)``, which adds its parser and sets ``handler`` to a function
taking the parsed arguments and returning an exit status. Modules import their heavy dependencies inside the
handler, so ``lanp --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import textwrap
from collections.abc import Callable
from typing import Any

from lanp_vad import __version__

OPTIONAL_MODULES = {
    **dict.fromkeys(("torch", "torchvision", "pytorchvideo", "efficientnet_lite_pytorch", "onnx", "scipy", "sklearn"),
                    "pip install 'lanp-vad[torch]'"),
    "openvino": "pip install 'lanp-vad[openvino]'",
    "ray": "pip install 'lanp-vad[ray]'",
}
"""What the extras bring, and how to install each: a command that needs one says so in one line."""

COMMANDS = ("train", "evaluate", "propagate", "score", "segments", "extract", "export", "serve", "demo", "watch")


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` from the commands' docstrings: reST markup (````code````) taken out, each paragraph re-wrapped to
    the terminal (docstrings wrap at the code's width), indented lines (lists, examples) kept as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = re.sub(r"``(.+?)``", r"\1", text, flags=re.S)
        paragraphs = []
        for paragraph in textwrap.dedent(text).strip().split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith((" ", "- ")) for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(textwrap.fill(" ".join(lines), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return None if action.help is None else re.sub(r"``(.+?)``", r"\1", action.help)


def positive(kind: type) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)`` that must be > 0."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{value} must be positive")
        return value

    return parse


def add_video_inputs(parser: argparse.ArgumentParser) -> None:
    """The INPUT... argument of every command that reads videos (expanded by ``pipeline.video.inputs``)."""
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="video files, folders (searched recursively), glob patterns, frame folders or .txt lists of paths",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lanp", description="Unsupervised video anomaly detection with LANP (ECCV 2024)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"lanp_vad.cli.{name}").register(subparsers)
    for command in subparsers.choices.values():
        command.formatter_class = HelpFormatter
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command. Exit status: 0 done, 1 some input failed (the command says which), 2 a user error (one
    line on stderr, with its kind), 130 interrupted. Anything else is a bug and shows its traceback."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    from lanp_vad.models.errors import UserError

    try:
        return int(args.handler(args) or 0)
    except UserError as error:
        print(f"lanp {args.command}: error ({error.kind}): {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:  # a path the user named that does not exist
        print(f"lanp {args.command}: error (not_found): {error}", file=sys.stderr)
        return 2
    except ImportError as error:  # an optional dependency this command needs
        hint = OPTIONAL_MODULES.get((error.name or "").split(".")[0])
        if hint is None:
            raise
        print(f"lanp {args.command}: error (missing_dependency): it needs {error.name}, which is not installed: "
              f"{hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lanp {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
