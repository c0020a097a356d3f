"""A private server inside the current process, for commands run with no server around.

Running a job "in-process" still goes through the real App on a loopback socket with a one-off
token, so the command line behaves exactly as it does against `brushlink serve`.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import replace
from typing import Any

from .app import App
from .config import ServerConfig, new_token
from .engines.catalog import build_registry, pick_device


class LocalServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = replace(config, host="127.0.0.1", port=0)
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
