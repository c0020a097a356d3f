"""`brushlink` command line: one subcommand per module in this package, plus the commands other
parts of the distribution add through the ``brushlink.commands`` entry points (the hot folder's
``watch``, the bridges' ``bundle``), so the server never imports a bridge.

Each subcommand exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import entry_points

from brushlink.plugin.home import join_token_argument

# Order is the order of `brushlink --help`; entry-point commands follow.
SUBCOMMAND_MODULES = [
    "serve",
    "jobs",  # generate, inpaint, style, rank
    "upscale",
    "models",
    "bench",
]
ENTRY_POINT_GROUP = "brushlink.commands"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="brushlink",
        description="Local image-model server for Krita, Blender and hot folders.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"{__package__}.{name}").register(sub)
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        entry.load()(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(join_token_argument(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
