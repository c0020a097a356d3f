"""``python -m brushlink.bridges.hotfolder`` = ``brushlink watch``."""

from __future__ import annotations

import argparse
import sys

from brushlink.plugin.home import join_token_argument

from .cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brushlink watch")
    add_arguments(parser)
    return run(parser.parse_args(join_token_argument(sys.argv[1:] if argv is None else argv)))


if __name__ == "__main__":
    sys.exit(main())
