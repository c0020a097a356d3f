"""The websocket transport: one reader loop and one writer task per connection.

The reader turns frames into calls on ``App``; everything the server says to a client goes
through the connection's outgoing queue, so frames from the worker, the scheduler and the
reader never interleave mid-message. The queue is bounded in bytes and every write in time:
a client that stops reading is dropped instead of holding the server's memory (its finished
results stay in the job book for a reconnect to collect).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
from typing import Protocol

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from brushlink.plugin.errors import BrushlinkError, InternalError, UnknownJob
from brushlink.plugin.frames import BinaryFrame, decode_frame
from brushlink.plugin.protocol import (
    ENCODINGS_HEADER,
    PATH,
    Cancel,
    Collect,
    Error,
    Failed,
    Ping,
    Pong,
    Submit,
    Welcome,
    decode_message,
)

from .auth import HandshakePolicy, status_for
from .config import Limits

log = logging.getLogger("brushlink.transport")

_ids = itertools.count(1)


def new_peer_id() -> int:
    """A number no other peer of this process has: the job book keys owners by it."""
    return next(_ids)


class Peer(Protocol):
    """Whoever submits jobs to ``App``: a websocket ``Connection``, or an in-process door such
    as the A1111 API's facade. Events come back through ``send`` as the frames a socket would
    carry."""

    id: int
    encoding: str  # how its result images travel (frames.ENCODINGS; "png" off loopback)

    def send(self, frames: list[str | bytes]) -> None: ...
    def send_error(self, err: BrushlinkError, job_id: str | None = None) -> None: ...


class Service(Protocol):
    """What the transport needs from the application (``App`` provides it)."""

    policy: HandshakePolicy

    def welcome(self, encoding: str, encodings: list[str]) -> Welcome: ...
    def rescan_models_if_stale(self) -> None: ...
    async def submit(self, conn: Peer, submit: Submit) -> None: ...
    async def receive_frame(self, conn: Peer, frame: BinaryFrame) -> None: ...
    def cancel(self, conn: Peer, job_id: str) -> None: ...
    def refuse(self, job_id: str) -> None: ...
    def collect(self, conn: Peer, job_id: str) -> bool: ...
    def connection_closed(self, conn: Peer) -> None: ...


class Connection:
    def __init__(self, ws: ServerConnection, app: Service, limits: Limits | None = None) -> None:
        self.ws = ws
        self.app = app
        self.limits = limits or Limits()
        self.id = new_peer_id()
        self.outgoing: asyncio.Queue[list[str | bytes] | None] = asyncio.Queue()
        self.queued_bytes = 0
        self.closed = False
        self.encoding, self.encodings = negotiate(ws)

    def send(self, frames: list[str | bytes]) -> None:
        """Queue frames for the writer; safe to call from the event loop at any time.

        Frames that find nothing waiting are always queued, however large (a result may be
        larger than ``max_outgoing_bytes`` on its own, and a client that reads must get it);
        frames that would pile up past the limit behind others drop the connection."""
        if self.closed:
            return
        size = sum(len(f) for f in frames)
        if self.queued_bytes and self.queued_bytes + size > self.limits.max_outgoing_bytes:
            log.warning(
                "dropping connection %d: %d bytes wait for a client that does not read",
                self.id,
                self.queued_bytes,
            )
            self._drop()
            return
        self.queued_bytes += size
        self.outgoing.put_nowait(frames)

    def _drop(self) -> None:
        """Close at once, without the closing handshake a client that does not read never
        completes."""
        self.closed = True
        self.ws.transport.abort()

    def send_error(self, err: BrushlinkError, job_id: str | None = None) -> None:
        if job_id is not None:
            self.send([Failed.from_error(job_id, err).encode()])
        else:
            self.send([Error(**err.to_wire()).encode()])

    async def _writer(self) -> None:
        while True:
            frames = await self.outgoing.get()
            if frames is None:
                return
            self.queued_bytes -= sum(len(f) for f in frames)
            for frame in frames:
                try:
                    await asyncio.wait_for(self.ws.send(frame), self.limits.write_timeout_s)
                except TimeoutError:
                    log.warning("dropping connection %d: a frame waited too long", self.id)
                    self._drop()
                    return

    async def serve(self) -> None:
        writer = asyncio.create_task(self._writer())
        try:
            self.send([self.app.welcome(self.encoding, self.encodings).encode()])
            self.app.rescan_models_if_stale()  # for the next client; this one has its welcome
            async for raw in self.ws:
                try:
                    await self._handle(raw)
                except BrushlinkError as err:
                    job_id = getattr(err, "job_id", None)
                    if job_id is not None:
                        self.app.refuse(job_id)  # its image frames, if any, are dropped
                    self.send_error(err, job_id)
                except Exception:
                    log.exception("unexpected error while handling a message")
                    self.send_error(InternalError())
        except ConnectionClosed:
            pass
        finally:
            self.closed = True
            self.app.connection_closed(self)
            self.outgoing.put_nowait(None)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await writer

    async def _handle(self, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            await self.app.receive_frame(self, decode_frame(raw))
            return
        message = decode_message(raw)
        if isinstance(message, Submit):
            await self.app.submit(self, message)
        elif isinstance(message, Cancel):
            self.app.cancel(self, message.job_id)
        elif isinstance(message, Collect):
            for job_id in message.job_ids:
                if not self.app.collect(self, str(job_id)):
                    self.send_error(UnknownJob(), str(job_id))
        elif isinstance(message, Ping):
            self.send([Pong(token=message.token).encode()])
        else:
            self.send_error(
                BrushlinkError.from_wire(
                    {"code": "unknown_message", "message": f"`{message.type}` is server->client."}
                )
            )


RAW_LAYOUTS = ["rgba8", "bgra8", "gray8"]


def negotiate(ws: ServerConnection) -> tuple[str, list[str]]:
    """How this connection's images travel: raw pixels on a loopback link, where a memory copy
    beats compressing (the first raw layout the client lists; it may send any raw layout), PNG
    on any other link."""
    try:
        local = ipaddress.ip_address(ws.remote_address[0]).is_loopback
    except (TypeError, ValueError, IndexError):
        local = False
    if not local:
        return "png", []
    offered = ws.request.headers.get(ENCODINGS_HEADER, "") if ws.request else ""
    wanted = [e.strip() for e in offered.split(",")]
    return next((e for e in wanted if e in RAW_LAYOUTS or e == "png"), "png"), list(RAW_LAYOUTS)


def process_request(app: Service):
    """The handshake hook: refuse bad paths, origins, hosts and tokens before upgrading."""

    def check(connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?")[0] != PATH:
            return connection.respond(404, f"brushlink serves its protocol at {PATH}\n")
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        err = app.policy.check(headers)
        if err is not None:
            log.warning("refused a connection: %s", err.code)
            return connection.respond(status_for(err), err.message + "\n")
        return None

    return check
