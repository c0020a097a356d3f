"""`brushlink serve`: run the server until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from ..app import App, DoorOpener
from ..config import ServerConfig, ensure_home, load_config, parse_address
from ..engines.catalog import build_registry, pick_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the brushlink server")
    p.add_argument("--host", help="address to bind (default 127.0.0.1; others are explicit)")
    p.add_argument("--port", type=int, help="port (default 7437; 0 picks a free one)")
    p.add_argument("--home", type=Path, help="BRUSHLINK_HOME: config, token, models, logs")
    p.add_argument("--models", type=Path, action="append", help="an extra model folder")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="where models run")
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
    )


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
    app = App(config, build_registry(config, device), token, device)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        def ready(url: str) -> None:
            for door in app.doors:  # before the websocket's line, which scripts wait for
                print(f"brushlink A1111 API on {door.url}", flush=True)
            print(f"brushlink listening on {url}", flush=True)

        await app.serve(ready, stop, doors(config))

    try:
        asyncio.run(main())
    except OSError as exc:
        where = getattr(exc, "address", None) or f"{config.host}:{config.port}"
        print(f"brushlink: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    return 0
