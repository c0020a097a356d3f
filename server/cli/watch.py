"""`brushlink watch`: the hot folder (the work is in brushlink.bridges.hotfolder)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="turn folders into recipes: drop files in, results come out",
        description="Watch INBOX: each subfolder holding a recipe.toml is a recipe; files dropped "
        "into it are processed and the results written to OUTBOX/<recipe>/.",
    )
    from brushlink.bridges.hotfolder.cli import add_arguments

    add_arguments(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from brushlink.bridges.hotfolder.cli import run

    return run(args)
