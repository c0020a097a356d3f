"""``brushlink mcp``: arguments, the SDK check, and the stdio server's life.

Added to the command line through the ``brushlink.commands`` entry point, so the server's
command line never imports this bridge. The MCP SDK is an optional extra
(``pip install 'brushlink[mcp]'``); without it the command says so and exits 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

INSTALL_HINT = (
    "brushlink mcp needs the MCP Python SDK, which is not installed. "
    "Install it with: pip install 'brushlink[mcp]'"
)


def default_out() -> Path:
    """Where pictures are saved unless ``--out`` says: the user's Pictures folder."""
    from platformdirs import user_pictures_dir

    return Path(user_pictures_dir()) / "brushlink"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mcp",
        help="serve brushlink's tools to an MCP client over stdio",
        description="An MCP server on stdin/stdout: tools to list models, generate, inpaint, "
        "restyle, upscale and rank, for MCP clients such as Claude Desktop.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where pictures are saved (default: brushlink/ in the user's Pictures folder)",
    )
    parser.add_argument("--server", metavar="URL", help="server URL (default: this machine's, "
                        "else a private in-process one)")  # fmt: skip
    parser.add_argument("--token", help="server token (default: read from the install's home)")
    parser.add_argument("--home", type=Path, help="BRUSHLINK_HOME")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        import mcp  # noqa: F401
    except ImportError:
        print(f"brushlink: {INSTALL_HINT}", file=sys.stderr)
        return 2
    from brushlink.plugin.errors import BrushlinkError

    from .backend import Backend
    from .tools import build_server

    out = (args.out or default_out()).expanduser()
    backend = Backend(args.server, args.token, args.home, out)
    try:
        welcome = backend.connect()
    except BrushlinkError as err:
        print(f"brushlink: {err.message} [{err.code}]", file=sys.stderr)
        return 3
    try:
        build_server(backend, welcome).run("stdio")
    except KeyboardInterrupt:
        pass
    finally:
        backend.close()
    return 0
