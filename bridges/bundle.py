"""`brushlink bundle krita|blender -o DIR`: build the add-on zips users install in their app.

Added to the command line through the ``brushlink.commands`` entry point."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

TARGETS = {
    "krita": "brushlink.bridges.krita.bundle",
    "blender": "brushlink.bridges.blender.bundle",
}


def register(sub: Any) -> None:
    p = sub.add_parser("bundle", help="build the Krita plugin or Blender extension zip")
    p.add_argument("target", choices=[*TARGETS, "all"])
    p.add_argument("-o", "--output", type=Path, default=Path("dist"), help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    targets = list(TARGETS) if args.target == "all" else [args.target]
    args.output.mkdir(parents=True, exist_ok=True)
    for target in targets:
        path = importlib.import_module(TARGETS[target]).build(args.output)
        print(path)
    return 0
