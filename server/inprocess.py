"""A private server inside the current process, for commands run with no server around.

Running a job "in-process" still goes through the real App on a loopback socket with a one-off
token, so the command line behaves exactly as it does against `brushlink serve`.
``find_or_start`` is the one rule every command follows: the server it was told to use, else
this machine's running server, else a private one here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.errors import ServerUnavailable
from brushlink.plugin.home import default_url, read_token

from .app import App
from .config import ServerConfig, load_config, new_token
from .engines.catalog import build_registry, pick_device


class LocalServer:
    def __init__(self, config: ServerConfig) -> None:
        # loopback, a free port, and no A1111 door: a private server for this process alone
        self.config = replace(config, host="127.0.0.1", port=0, sdapi=None)
        self.token = new_token()
        self.url = ""
        self.app: App | None = None  # once started: the application, for a look at its job book
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="brushlink-local", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            device = pick_device(self.config.device)
            app = App(self.config, build_registry(self.config, device), self.token, device)
            self.app = app

            def ready(url: str) -> None:
                self.url = url
                self._ready.set()

            await app.serve(ready, self._stop)

        try:
            asyncio.run(serve())
        except BaseException as exc:  # surfaced to the caller of start()
            self._error = exc
            self._ready.set()

    def start(self) -> LocalServer:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


@dataclass
class Reached:
    """A connected client, and the private server behind it when one had to be started."""

    url: str
    token: str | None
    client: BlockingClient
    local: LocalServer | None = None

    def close(self) -> None:
        self.client.close()
        if self.local is not None:
            self.local.stop()


def find_or_start(
    url: str | None = None,
    token: str | None = None,
    home: Path | None = None,
    on_local: Callable[[], None] | None = None,
) -> Reached:
    """Connect to ``url`` (raising ``ServerUnavailable`` when it does not answer), or when none
    is named to this machine's server; when that does not answer either, start a private
    in-process server (``on_local`` is told first) and connect to it."""
    target = url or default_url(home)
    given = token or read_token(home)
    client = BlockingClient(target, given, reconnect=False)
    try:
        client.connect()
        return Reached(target, given, client)
    except ServerUnavailable:
        client.close()
        if url:
            raise
    except BaseException:
        client.close()
        raise
    if on_local is not None:
        on_local()
    local = LocalServer(load_config(home)).start()
    client = BlockingClient(local.url, local.token, reconnect=False)
    try:
        client.connect()
    except BaseException:
        client.close()
        local.stop()
        raise
    return Reached(local.url, local.token, client, local)
