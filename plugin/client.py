"""The asyncio client: a thin adapter between a websocket and ``JobTracker``.

    async with Client() as client:            # URL and token from BRUSHLINK_HOME by default
        result = await client.run(Job(Request(kind="style", style="sketch"), image=png))

If the socket drops, the client reconnects with backoff, asks the server for its unfinished
jobs (``collect``) and submits again any the server no longer knows (job ids make that safe).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .errors import (
    BrushlinkError,
    JobWasCancelled,
    MessageTooBig,
    OriginRefused,
    ServerUnavailable,
    Unauthorized,
)
from .frames import HEADER_SIZE, decode_frame, image_size
from .home import default_url, read_token
from .jobs import JobTracker, is_final
from .protocol import (
    ENCODINGS_HEADER,
    Cancel,
    Cancelled,
    Collect,
    Error,
    Failed,
    JobEvent,
    Message,
    Result,
    Submit,
    Welcome,
    decode_message,
)
from .request import Job

log = logging.getLogger("brushlink.client")

EventCallback = Callable[[Message], Awaitable[None] | None]


class JobHandle:
    """One submitted job: iterate its events, or await its result."""

    def __init__(self, client: Client, job_id: str, job: Job | None) -> None:
        self.client = client
        self.job = job  # None: a job of an earlier connection, attached by `collect`
        self.job_id = job_id
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self.final: JobEvent | None = None

    def _push(self, event: Message) -> None:
        self._events.put_nowait(event)

    async def events(self) -> AsyncIterator[Message]:
        """Every event of the job, ending with its final one (result, failed or cancelled)."""
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, JobEvent) and is_final(event):
                return

    async def result(self, on_event: EventCallback | None = None) -> Result:
        async for event in self.events():
            if on_event is not None:
                maybe = on_event(event)
                if asyncio.iscoroutine(maybe):
                    await maybe
            if isinstance(event, Result):
                return event
            if isinstance(event, Failed):
                raise event.exception()
            if isinstance(event, Cancelled):
                raise JobWasCancelled()
        raise ServerUnavailable("The connection closed before the job finished.")

    async def cancel(self) -> None:
        await self.client.cancel(self.job_id)


class Client:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        open_timeout: float = 10.0,
        max_size: int = 64 * 2**20,
        reconnect: bool = True,
        max_reconnect_delay: float = 5.0,
        encodings: tuple[str, ...] = ("png",),
    ) -> None:
        """``encodings``: how this client can read result images, fastest first (``bgra8``,
        ``rgba8``; ``png`` always works); the server picks one for the link."""
        self.url = url or default_url()
        self.encodings = encodings
        self.token = token if token is not None else read_token()
        self.open_timeout = open_timeout
        self.max_size = max_size
        self.reconnect = reconnect
        self.max_reconnect_delay = max_reconnect_delay
        self.welcome: Welcome | None = None
        self.tracker = JobTracker()
        self._handles: dict[str, JobHandle] = {}
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False
        self._lost = False  # reconnect=False and the connection dropped: fail fast from now on
        self._send_lock = asyncio.Lock()  # a submit's header and frames must not interleave

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # ------------------------------------------------------------------ connection

    async def _open(self) -> Welcome:
        headers = {ENCODINGS_HEADER: ", ".join(self.encodings)}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            ws = await connect(
                self.url,
                additional_headers=headers,
                open_timeout=self.open_timeout,
                max_size=self.max_size,
                compression=None,  # payloads are PNG: deflate would only cost time
                proxy=None,
                ping_interval=20,
                ping_timeout=60,  # a busy CPU server may answer pings late
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise Unauthorized() from exc
            if status == 403:
                raise OriginRefused() from exc
            raise ServerUnavailable(f"The server at {self.url} answered HTTP {status}.") from exc
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise ServerUnavailable(
                f"The brushlink server at {self.url} cannot be reached ({exc.__class__.__name__}). "
                "Is `brushlink serve` running?"
            ) from exc
        try:
            first = decode_message(await ws.recv())
        except (ConnectionClosed, BrushlinkError) as exc:
            await ws.close()
            raise ServerUnavailable("The server closed the connection before greeting.") from exc
        if not isinstance(first, Welcome):
            await ws.close()
            raise ServerUnavailable("The server did not greet with `welcome`.")
        if first.version.split(".")[0] != "1":
            await ws.close()
            raise ServerUnavailable(f"The server speaks protocol {first.version}, this client 1.x.")
        self._ws = ws
        self.welcome = first
        return first

    async def connect(self) -> Welcome:
        welcome = await self._open()
        self._connected.set()
        self._reader = asyncio.create_task(self._read_loop())
        return welcome

    async def close(self) -> None:
        self._closing = True
        if self._reader:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._ws:
            await self._ws.close()
        for handle in self._handles.values():
            if handle.final is None:
                handle._push(Failed(handle.job_id, "server_unavailable", "The client was closed."))

    async def _read_loop(self) -> None:
        while not self._closing:
            assert self._ws is not None
            try:
                async for raw in self._ws:
                    self._dispatch(raw)
            except ConnectionClosed:
                pass
            if self._closing:
                return
            self._connected.clear()
            if not self.reconnect:
                self._lost = True
                self._fail_unfinished("The connection to the server was lost.")
                return
            await self._reconnect()

    async def _reconnect(self) -> None:
        delay = 0.1
        while not self._closing:
            try:
                await self._open()
            except Unauthorized:
                self._lost = True
                self._fail_unfinished("The server no longer accepts this client's token.")
                return
            except ServerUnavailable:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)
                continue
            self._connected.set()
            unfinished = self.tracker.unfinished()
            if unfinished:
                await self._send(Collect(job_ids=unfinished).encode())
            return

    def _fail_unfinished(self, message: str) -> None:
        for job_id in self.tracker.unfinished():
            event = self.tracker.receive(Failed(job_id, "server_unavailable", message))
            if event and job_id in self._handles:
                self._handles[job_id].final = event
                self._handles[job_id]._push(event)

    def _dispatch(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            try:
                self.tracker.receive_binary(decode_frame(raw))
            except BrushlinkError:
                log.warning("ignored a malformed binary frame from the server")
            return
        try:
            message = decode_message(raw)
        except BrushlinkError:
            log.warning("ignored a message this client does not understand")
            return
        if isinstance(message, Error):
            log.warning("server error: %s (%s)", message.message, message.code)
            return
        if not isinstance(message, JobEvent):
            return
        handle = self._handles.get(message.job_id)
        if (
            isinstance(message, Failed)
            and message.code == "unknown_job"
            and handle is not None
            and handle.job is not None
        ):
            # The server forgot the job (it restarted): submit it again under the same id.
            asyncio.get_running_loop().create_task(self._resubmit(message.job_id))
            return
        event = self.tracker.receive(message)
        if event is None or handle is None:
            return
        if is_final(event):
            handle.final = event
        handle._push(event)

    async def _send(self, *frames: str | bytes) -> None:
        async with self._send_lock:
            if self._lost:
                raise ServerUnavailable("The connection to the server was lost.")
            await self._connected.wait()
            assert self._ws is not None
            for frame in frames:
                await self._ws.send(frame)

    # ------------------------------------------------------------------ jobs

    async def submit(self, job: Job) -> JobHandle:
        """Send a job (connecting first if this client never has). While the client is
        reconnecting, the job waits for the connection rather than failing; a client made
        with ``reconnect=False`` whose connection is gone raises ``ServerUnavailable``."""
        if self.welcome is None:
            await self.connect()
        if self._lost:
            raise ServerUnavailable("The connection to the server was lost.")
        job = self._as_sent(job)
        self._check_size(job)
        handle = JobHandle(self, job.job_id, job)
        self._handles[job.job_id] = handle
        self.tracker.submitted(job.job_id)
        await self._send_job(job)
        return handle

    def _as_sent(self, job: Job) -> Job:
        """Raw pixels this link does not take become PNG here, once (not per check and send)."""
        raw = tuple(self.welcome.encodings) if self.welcome else ()
        limit = self.welcome.limits.get("max_message_bytes") if self.welcome else None
        return job.as_sent(raw, limit)

    def _check_size(self, job: Job) -> None:
        """Refuse here what the server would refuse by closing the connection."""
        limit = (self.welcome.limits if self.welcome else {}).get("max_message_bytes")
        if not limit:
            return
        for slot, _, image in job.slots():
            size = image_size(image)
            if size + HEADER_SIZE > limit:
                raise MessageTooBig(
                    f"The `{slot}` image is {size / 2**20:.1f} MiB; the server accepts "
                    f"messages up to {limit / 2**20:.1f} MiB.",
                    field=slot,
                )

    async def _send_job(self, job: Job) -> None:
        submit = Submit(job_id=job.job_id, job=job.request, images=job.image_refs())
        # On a dropped connection the reconnect's collect or resubmit takes it from here.
        with contextlib.suppress(ConnectionClosed):
            raw = tuple(self.welcome.encodings) if self.welcome else ()
            limit = self.welcome.limits.get("max_message_bytes") if self.welcome else None
            await self._send(submit.encode(), *job.frames(raw, limit))

    async def _resubmit(self, job_id: str) -> None:
        handle = self._handles.get(job_id)
        if handle is not None and handle.final is None and handle.job is not None:
            with contextlib.suppress(ServerUnavailable):
                await self._send_job(handle.job)

    async def run(self, job: Job, on_event: EventCallback | None = None) -> Result:
        """Submit and wait for the result; raises the job's error or JobWasCancelled."""
        handle = await self.submit(job)
        try:
            return await handle.result(on_event)
        finally:
            self.forget(job.job_id)

    def forget(self, job_id: str) -> None:
        self._handles.pop(job_id, None)
        self.tracker.forget(job_id)

    async def cancel(self, job_id: str) -> None:
        await self._send(Cancel(job_id=job_id).encode())

    async def collect(self, job_ids: list[str]) -> list[JobHandle]:
        """Attach to jobs submitted by an earlier connection (e.g. before a crash)."""
        handles = []
        for job_id in job_ids:
            handle = self._handles.get(job_id)
            if handle is None:
                handle = JobHandle(self, job_id, None)
                self._handles[job_id] = handle
                self.tracker.submitted(job_id)
            handles.append(handle)
        await self._send(Collect(job_ids=job_ids).encode())
        return handles
