"""A blocking facade over ``Client`` for host threads (Krita's and Blender's main threads, scripts).

The asyncio client runs on a private daemon thread with its own event loop. Calls from any
thread are handed to that loop and waited on. ``on_event`` callbacks run on the client's thread:
a host must pass events to its own main thread (Qt timer, ``bpy.app.timers``) before touching
its API.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from .client import Client
from .errors import ServerUnavailable
from .protocol import Message, Result, Welcome
from .request import Job

T = TypeVar("T")


class BlockingClient:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float | None = None,
        open_timeout: float = 10.0,
        reconnect: bool = True,
        encodings: tuple[str, ...] = ("png",),
    ) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="brushlink-client", daemon=True
        )
        self._thread.start()
        self._client = Client(
            url, token, open_timeout=open_timeout, reconnect=reconnect, encodings=encodings
        )
        self._futures: dict[str, concurrent.futures.Future[Result]] = {}

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def welcome(self) -> Welcome | None:
        return self._client.welcome

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout if timeout is not None else self.timeout)
        except TimeoutError:
            future.cancel()
            raise ServerUnavailable("The server did not answer in time.") from None

    def connect(self) -> Welcome:
        return self._call(self._client.connect())

    def run(
        self,
        job: Job,
        on_event: Callable[[Message], None] | None = None,
        timeout: float | None = None,
    ) -> Result:
        """Submit and block until the result; raises the job's error or JobWasCancelled."""
        return self._call(self._client.run(job, on_event), timeout)

    def submit(self, job: Job, on_event: Callable[[Message], None] | None = None) -> str:
        """Submit without waiting; ``wait(job_id)`` collects the result later."""
        handle = self._call(self._client.submit(job))

        async def follow() -> Result:
            try:
                return await handle.result(on_event)
            finally:
                self._client.forget(handle.job_id)

        self._futures[job.job_id] = asyncio.run_coroutine_threadsafe(follow(), self._loop)
        return job.job_id

    def wait(self, job_id: str, timeout: float | None = None) -> Result:
        future = self._futures.pop(job_id)
        try:
            result: Result = future.result(timeout if timeout is not None else self.timeout)
            return result
        except TimeoutError:
            self._futures[job_id] = future
            raise

    def cancel(self, job_id: str) -> None:
        self._call(self._client.cancel(job_id))

    def close(self) -> None:
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):  # closing must never raise into a host's shutdown
            self._call(self._client.close(), timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> BlockingClient:
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
