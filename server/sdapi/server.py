"""The A1111 door's HTTP server: uvicorn's ``Server.serve()`` on the App's own event loop.

The socket is bound here first (so port 0 is known before the server says where it listens),
then handed to uvicorn, which serves it beside the websocket until the App stops. uvicorn's own
signal handling is left out: ``brushlink serve`` owns SIGINT and SIGTERM and stops both doors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import uvicorn

from .routes import build
from .security import Guard, max_body_bytes

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("brushlink.sdapi")

PREFIX = "/sdapi/v1"


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the App's owner handles signals and stops this server


class BindError(OSError):
    """The A1111 API's address could not be bound."""

    def __init__(self, address: str, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.address = address


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise BindError(f"{host}:{port} (the A1111 API)", exc) from exc
    return sock


class SdapiServer:
    def __init__(self, server: _Server, sock: socket.socket, task: asyncio.Task[None], url: str):
        self._server = server
        self._socket = sock
        self._task = task
        self.url = url

    @classmethod
    async def start(cls, app: App, host: str, port: int) -> SdapiServer:
        sock = _bind(host, port)
        bound = sock.getsockname()[1]
        policy = replace(app.policy, host=host, port=bound)
        asgi = Guard(build(app), policy, max_body_bytes(app.config.limits))
        config = uvicorn.Config(
            asgi,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        server = _Server(config)
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            sock.close()
            task.result()  # raises what stopped it
            raise BindError(f"{host}:{bound} (the A1111 API)", OSError("uvicorn did not start"))
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{bound}{PREFIX}"
        log.info("the A1111 API listens on %s", url)
        return cls(server, sock, task, url)

    async def stop(self) -> None:
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 10)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        finally:
            self._socket.close()
