"""`brushlink bench NAME`: benchmarks that print measurements taken side by side in one run."""

from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "transport": "brushlink.server.benchmarks.transport",
    "weight-free": "brushlink.server.benchmarks.weight_free",
    "pipeline": "brushlink.server.sd.bench",
    "builtin": "brushlink.server.builtin.bench",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark (side-by-side measurements)")
    p.add_argument("name", choices=sorted(BENCHES))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    return int(importlib.import_module(BENCHES[args.name]).main() or 0)
