"""`brushlink bench NAME`: benchmarks that print measurements taken side by side in one run."""

from __future__ import annotations

import argparse
import importlib

BENCHES = {
    "transport": "brushlink.server.benchmarks.transport",
    "weight-free": "brushlink.server.benchmarks.weight_free",
    "pipeline": "brushlink.server.benchmarks.pipeline",
    "builtin": "brushlink.server.benchmarks.builtin_quality",
    "upscale": "brushlink.server.benchmarks.upscale_quality",
    # a bridge's own: imported by name only when asked for, so the server imports no bridge
    "krita": "brushlink.bridges.krita.bench",
    "cluster": "brushlink.server.benchmarks.cluster",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="run a benchmark (side-by-side measurements)")
    p.add_argument("name", choices=sorted(BENCHES))
    p.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own flags")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(BENCHES[args.name])
    return int((module.main(args.options) if args.options else module.main()) or 0)
