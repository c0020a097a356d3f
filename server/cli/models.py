"""`brushlink models`: the models and engines this install has, and what each can do; and when
a server is running, its workers (where jobs run) and the models each holds warm."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from brushlink.plugin import codec
from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.errors import BrushlinkError
from brushlink.plugin.home import default_url, read_token
from brushlink.plugin.protocol import WorkerInfo

from ..config import load_config
from ..engines.catalog import build_registry, pick_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list models and engines with what each can do")
    p.add_argument("--home", type=Path, help="BRUSHLINK_HOME")
    p.add_argument("--models", type=Path, action="append", help="an extra model folder")
    p.add_argument("--json", action="store_true", help="print JSON, as `welcome.models` has it")
    p.add_argument(
        "--addons", action="store_true", help="with --json: the add-ons, as `welcome.addons`"
    )
    p.add_argument(
        "--workers",
        action="store_true",
        help="with --json: the running server's workers, as `welcome.workers`",
    )
    p.add_argument("--server", help="the server whose workers to list (default: this machine's)")
    p.add_argument("--token", help="its token (default: BRUSHLINK_HOME/token)")
    p.set_defaults(func=run)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return "-"


def run(args: argparse.Namespace) -> int:
    config = load_config(args.home, models_dirs=tuple(args.models) if args.models else None)
    registry = build_registry(config, pick_device(config.device))
    models = registry.models()
    addons = registry.addons()
    if args.json and args.workers:
        found = server_workers(args, config.home)
        print(json.dumps([codec.encode(w) for w in (found[1] if found else [])], indent=2))
        return 0 if found else 3
    if args.json:
        cards = addons if args.addons else models
        print(json.dumps([codec.encode(c) for c in cards], indent=2))
        return 0
    print(f"{'model':<28} {'engine':<10} {'family':<10} {'size':>9}  kinds")
    for m in models:
        print(
            f"{m.name:<28} {m.engine:<10} {m.family or '-':<10} {_size(m.size_bytes):>9}  "
            f"{', '.join(m.kinds)}"
        )
        if m.styles:
            print(f"{'':<28} styles: {', '.join(m.styles)}")
    if addons:
        print(f"\n{'add-on':<28} {'type':<10} {'family':<10} {'size':>9}")
    for a in addons:
        print(f"{a.name:<28} {a.type:<10} {a.family or '-':<10} {_size(a.size_bytes):>9}")
    found = server_workers(args, config.home)
    if found is None:
        print("\nworkers: no server is running here (`brushlink serve` starts one)")
        return 0
    url, workers = found
    print(f"\n{'worker':<16} {'device':<8} {'node':<28} {'busy':<5} models warm  ({url})")
    for w in workers:
        warm = ", ".join(w.models_warm) or "-"
        print(f"{w.name:<16} {w.device:<8} {w.node:<28} {'yes' if w.busy else 'no':<5} {warm}")
    return 0


def server_workers(args: argparse.Namespace, home: Path) -> tuple[str, list[WorkerInfo]] | None:
    """The running server's URL and workers (its welcome), or None when none answers."""
    url = args.server or default_url(home)
    token = args.token or read_token(home)
    if token is None:
        return None
    client = BlockingClient(url, token, reconnect=False, open_timeout=3)
    try:
        welcome = client.connect()
    except (BrushlinkError, OSError):
        return None
    finally:
        client.close()
    return url, welcome.workers
