"""`brushlink serve`: run the server until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from pathlib import Path

from ..app import App, DoorOpener
from ..config import ServerConfig, ensure_home, load_config, parse_address
from ..engines.catalog import build_registry, pick_device
from ..workers import ClusterUnavailable


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the brushlink server")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; others are explicit)")
    p.add_argument("--port", type=int, help="port (default 7437; 0 picks a free one)")
    p.add_argument("--home", type=Path, help="BRUSHLINK_HOME: config, token, models, logs")
    p.add_argument("--models", type=Path, action="append", help="an extra model folder")
    p.add_argument(
        "--device",
        type=device_name,
        help="where models run: auto (default; every GPU), cpu, cuda (every GPU), cuda:N, mps",
    )
    p.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="N workers (on the CPU: N CPU workers, each with cores/N torch threads); "
        "with --ray: at most N Ray workers",
    )
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run engines on a Ray cluster: auto (the one `ray start` runs here), local "
        "(start one on this machine), HOST:PORT or ray://HOST:10001",
    )
    p.add_argument(
        "--ray-cpus-per-worker",
        type=float,
        metavar="K",
        help="with --ray: CPU workers of K cores each instead of one worker per GPU",
    )
    p.add_argument(
        "--ray-poll-s",
        type=float,
        metavar="SECONDS",
        help="with --ray: how often to look for nodes that joined (default 10)",
    )
    p.add_argument("--vram-budget", help="GPU memory for loaded models, e.g. 10G")
    p.add_argument("--ram-budget", help="RAM for loaded models on the CPU, e.g. 8G")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the UNet")
    p.add_argument(
        "--sdapi",
        metavar="[HOST:]PORT",
        type=_address,
        help="also serve the A1111 web-UI API (/sdapi/v1) there, e.g. 7860 (0 picks a free port)",
    )
    p.add_argument("--log-level", default="INFO")
    p.set_defaults(func=run)


def _address(text: str) -> str:
    try:
        parse_address(text, "127.0.0.1")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return load_config(
        args.home,
        host=args.host,
        port=args.port,
        device=args.device,
        models_dirs=tuple(args.models) if args.models else None,
        vram_budget=args.vram_budget,
        ram_budget=args.ram_budget,
        compile=args.compile,
        sdapi=args.sdapi,
        workers=args.workers,
        ray=args.ray,
        ray_cpus_per_worker=args.ray_cpus_per_worker,
        ray_poll_s=args.ray_poll_s,
    )


def device_name(text: str) -> str:
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError("auto, cpu, cuda, cuda:N or mps")
    return text


def setup_logging(home: Path, level: str) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    handlers.append(logging.FileHandler(home / "logs" / "server.log", encoding="utf-8"))
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("uvicorn").setLevel(logging.WARNING)


def doors(config: ServerConfig) -> list[DoorOpener]:
    """The A1111 web-UI API when ``[server] sdapi`` (or ``--sdapi``) asks for it."""
    address = config.sdapi_address()
    if address is None:
        return []
    from ..sdapi.server import SdapiServer  # FastAPI and uvicorn load only when asked for

    async def open_sdapi(app: App) -> SdapiServer:
        return await SdapiServer.start(app, *address)

    return [open_sdapi]


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    token = ensure_home(config.home)
    setup_logging(config.home, args.log_level)
    device = pick_device(config.device)
    try:
        app = App(config, build_registry(config, device), token, device)
    except ClusterUnavailable as exc:
        print(f"brushlink: {exc}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def ready(url: str) -> None:
            # once the workers are up: joining a Ray cluster installs Ray's own handlers
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            for door in app.doors:  # before the websocket's line, which scripts wait for
                print(f"brushlink A1111 API on {door.url}", flush=True)
            print(f"brushlink listening on {url}", flush=True)

        await app.serve(ready, stop, doors(config))

    try:
        asyncio.run(main())
    except ClusterUnavailable as exc:
        print(f"brushlink: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = getattr(exc, "address", None) or f"{config.host}:{config.port}"
        print(f"brushlink: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    return 0
