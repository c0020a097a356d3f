"""Where an install keeps its token and config, found the same way by the server and every bridge.

``BRUSHLINK_HOME`` wins; otherwise the platform's user data folder, as platformdirs would name it
(bridges cannot depend on platformdirs, so this mirrors its rules for the three platforms).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .protocol import DEFAULT_PORT, PATH

APP = "brushlink"


def default_home() -> Path:
    env = os.environ.get("BRUSHLINK_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / APP


def read_token(home: Path | None = None) -> str | None:
    """The install's token, or None when the server has never started here."""
    path = (home or default_home()) / "token"
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def read_config(home: Path | None = None) -> dict[str, Any]:
    path = (home or default_home()) / "config.toml"
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:  # pragma: no cover - 3.10 hosts
        return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def default_url(home: Path | None = None) -> str:
    """The URL of this machine's server, from config.toml's [server] host/port if set."""
    server = read_config(home).get("server", {})
    host = str(server.get("host", "127.0.0.1"))
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"  # a wildcard bind is reached through loopback locally
    port = int(server.get("port", DEFAULT_PORT))
    if ":" in host:
        host = f"[{host}]"
    return f"ws://{host}:{port}{PATH}"


def join_token_argument(argv: list[str]) -> list[str]:
    """``--token VALUE`` as ``--token=VALUE``: a token may start with ``-``, which argparse
    would otherwise read as an option of its own ("expected one argument")."""
    joined: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--token":
            value = next(args, None)
            joined.append(arg if value is None else f"--token={value}")
        else:
            joined.append(arg)
    return joined
