"""Submitting jobs to the server without ever giving up on an input because the server was away.

One ``BlockingClient`` (one websocket) is shared by every worker thread. While the server cannot
be reached the runner waits and tries again with exponential backoff, logging what it waits
for; the input stays in the inbox meanwhile. Only errors about the request itself (a bad image,
a model that cannot do the kind) reach the caller, and they send the input to failed/.
Once connected, the client rides out a server restart on its own: it reconnects and submits the
unfinished job again under the same id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.errors import QueueFull, ServerUnavailable, Unauthorized
from brushlink.plugin.home import default_url, read_token
from brushlink.plugin.protocol import Result, Welcome
from brushlink.plugin.request import JobRequest

T = TypeVar("T")


class ServerGone(Exception):
    """The server stayed away longer than ``give_up_after`` (``--once`` only); not the input's fault."""


class Stopped(ServerGone):
    """The watcher is stopping; the input stays in the inbox for the next start."""


class Runner:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        home: Path | None = None,
        log: Callable[[str], None] = print,
        give_up_after: float | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self.url = url or default_url(home)
        self._token = token
        self._home = home
        self._log = log
        self.give_up_after = give_up_after
        self.max_backoff = max_backoff
        self._client: BlockingClient | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    # ----------------------------------------------------------------- connection

    def _connected(self) -> BlockingClient:
        """The shared client, connecting (and waiting for the server) when there is none."""
        if self._stopped.is_set():
            raise Stopped("stopping")
        with self._lock:
            if self._client is not None:
                return self._client
            self._client = self._wait_for(self._open, "for the server")
            return self._client

    def _open(self) -> BlockingClient:
        token = self._token if self._token is not None else read_token(self._home)
        client = BlockingClient(self.url, token)
        try:
            client.connect()
        except BaseException:
            client.close()
            raise
        return client

    def _drop(self, client: BlockingClient) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()

    def welcome(self) -> Welcome | None:
        return self._connected().welcome

    def max_pixels(self) -> int | None:
        welcome = self.welcome()
        value = welcome.limits.get("max_pixels") if welcome else None
        return int(value) if value else None

    # ----------------------------------------------------------------- jobs

    def run(self, request: JobRequest, label: str) -> Result:
        """Run one job to its end; retries while the server is unreachable, raises request errors."""

        def attempt() -> Result:
            client = self._connected()
            try:
                return client.run(request)
            except (ServerUnavailable, Unauthorized):
                if self._stopped.is_set():
                    raise Stopped("stopping") from None
                self._drop(client)  # reconnect (and re-read the token) on the next attempt
                raise

        return self._wait_for(attempt, label)

    def _wait_for(self, action: Callable[[], T], what: str) -> T:
        delay = 0.5
        first_failure: float | None = None
        while True:
            try:
                return action()
            except (ServerUnavailable, Unauthorized, QueueFull) as exc:
                now = time.monotonic()
                first_failure = first_failure or now
                if self.give_up_after is not None and now - first_failure > self.give_up_after:
                    raise ServerGone(
                        f"the server at {self.url} stayed unreachable for "
                        f"{self.give_up_after:g} s ({exc.message})"
                    ) from exc
                self._log(f"waiting  {what}: {exc.message} Retrying in {delay:.1f} s.")
                if self._stopped.wait(delay):
                    raise Stopped("stopping") from exc
                delay = min(delay * 2, self.max_backoff)

    def stop_waiting(self) -> None:
        """Wake the workers waiting for the server; jobs already running may still finish."""
        self._stopped.set()

    def stop(self) -> None:
        """Wake any waiting worker and close the connection (running jobs end as ``Stopped``)."""
        self._stopped.set()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
