"""The server application: the one owner of the registry, the job book and the scheduler.

Life of a submit (see docs/protocol.md):
  1. header: the job id, shape and types, every value against the model's card
     -> `failed` at once if wrong; otherwise the job is in the book (state SUBMITTED)
  2. binary frames collected until every declared slot is in
  3. sizes from PNG headers, decoding, the engine's check (off the event loop) -> `failed`
  4. `accepted`, then `queued` with the position; the scheduler takes it from there
A cancel or a second submit of the same id finds the job at any of these steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Protocol

from websockets.asyncio.server import ServerConnection, serve

from brushlink.plugin import codec
from brushlink.plugin.errors import (
    BrushlinkError,
    DuplicateJob,
    InvalidField,
    QueueFull,
    UnknownJob,
)
from brushlink.plugin.frames import BinaryFrame
from brushlink.plugin.jobs import JobState
from brushlink.plugin.protocol import (
    PATH,
    PROTOCOL_VERSION,
    Accepted,
    Cancelled,
    Failed,
    Queued,
    Started,
    Submit,
    Welcome,
)

from .auth import HandshakePolicy
from .config import ServerConfig
from .engines.registry import EngineRegistry
from .images import transcode
from .jobs import JobBook, JobRecord
from .scheduler import Scheduler
from .transport import Connection, Peer, process_request
from .validate import MAX_SEED, check_request, decode_images
from .workers import make_pool
from .workers.base import Pool

log = logging.getLogger("brushlink.server")


class Door(Protocol):
    """Another way in to the same App (the A1111 HTTP API), started beside the websocket."""

    url: str

    async def stop(self) -> None: ...


DoorOpener = Callable[["App"], Awaitable[Door]]

MODEL_RESCAN_S = 10.0  # how stale the model list may get before a new connection rescans it

CAPABILITIES = ["binary-frames", "progress", "previews", "cancel", "collect", "priority"]


def check_job_id(job_id: str) -> None:
    """Job ids are UUIDs in their canonical spelling: binary frames carry the 16 bytes, and
    the events that name the job must name it as the client did."""
    try:
        canonical = str(uuid.UUID(job_id))
    except (ValueError, AttributeError, TypeError) as exc:
        raise InvalidField("`job_id` must be a UUID.", field="job_id") from exc
    if canonical != job_id:
        raise InvalidField(
            f"`job_id` must be a UUID written as `{canonical}` (lower case, with dashes).",
            field="job_id",
        )


class App:
    def __init__(
        self,
        config: ServerConfig,
        registry: EngineRegistry,
        token: str,
        device: str,
        pool: Pool | None = None,
    ):
        """``pool``: the workers jobs run on; by default the config's (``workers.make_pool``:
        local devices, or Ray actors with ``config.ray``)."""
        self.config = config
        self.registry = registry
        self.device = device
        self.book = JobBook(config.result_ttl_s)
        self.scheduler = Scheduler(pool or make_pool(config, registry, device))
        self.policy = HandshakePolicy(
            token=token,
            host=config.host,
            port=config.port,
            allowed_origins=config.allowed_origins,
            allowed_hosts=config.allowed_hosts,
        )
        self._refused: deque[str] = deque(maxlen=1024)  # ids whose stray frames are dropped
        self._scanned = 0.0
        self._rescan: asyncio.Task[object] | None = None
        self.doors: list[Door] = []  # the other ways in, once they listen

    # ------------------------------------------------------------------ greeting

    def rescan_models_if_stale(self) -> None:
        """Listing models may touch the disk and import engines: never on the event loop."""
        if time.monotonic() - self._scanned < MODEL_RESCAN_S or self._rescan is not None:
            return
        self._scanned = time.monotonic()

        async def rescan() -> None:
            try:
                await asyncio.to_thread(self.registry.refresh)
            except Exception:
                log.exception("listing models failed; keeping the previous list")
            finally:
                self._rescan = None

        self._rescan = asyncio.get_running_loop().create_task(rescan())

    def welcome(self, encoding: str = "png", encodings: list[str] | None = None) -> Welcome:
        models = self.registry.models()
        kinds = sorted({k for m in models for k in m.kinds})
        return Welcome(
            version=PROTOCOL_VERSION,
            capabilities=[*kinds, *CAPABILITIES],
            models=models,
            limits=self.config.limits.to_wire(),
            addons=self.registry.addons(),
            encoding=encoding,
            encodings=list(encodings or []),
            workers=self.scheduler.workers(),
        )

    # ------------------------------------------------------------------ submit

    async def submit(self, conn: Peer, submit: Submit) -> None:
        job_id = submit.job_id
        expected = {(r.slot, r.index) for r in submit.images}
        try:
            check_job_id(job_id)
            existing = self.book.get(job_id)
            if existing is not None:
                if existing.submit_wire != codec.encode(submit):
                    raise DuplicateJob(field="job_id")
                # The same request again (a client retrying after a reconnect, or from a
                # second connection): attach to the job. Its frames fill the job while its
                # images are still arriving, and are dropped after.
                if existing.receiving:
                    existing.uploaders.add(conn.id)
                self.collect(conn, job_id)
                return
            limit = self.config.limits.max_queued_per_client
            if self.book.unfinished_for(conn.id) >= limit:
                raise QueueFull(
                    f"This connection already has {limit} unfinished jobs; wait for some to finish."
                )
            request = submit.job
            engine, card = check_request(request, submit.images, self.registry, self.config.limits)
        except BrushlinkError as err:
            self.refuse(str(job_id))
            conn.send_error(err, str(job_id))
            return
        seed = request.seed if request.seed is not None else random.randrange(MAX_SEED + 1)
        record = JobRecord(
            job_id=job_id,
            submit_wire=codec.encode(submit),
            request=request,
            engine=engine,
            card=card,
            seed=seed,
            owner_id=conn.id,
            watchers={conn.id: conn.send},
            uploaders={conn.id},
            declared=frozenset(expected),
            expected=expected,
            encoding=conn.encoding,
        )
        self.book.add(record)
        if not expected:
            await self._complete(record)

    async def receive_frame(self, conn: Peer, frame: BinaryFrame) -> None:
        key = (frame.slot, frame.index)
        record = self.book.get(frame.job_id)
        if record is None or conn.id not in record.watchers:
            if frame.job_id not in self._refused:
                conn.send_error(
                    InvalidField("A binary frame arrived for a job that was not submitted."),
                    frame.job_id,
                )
            return
        if key not in record.declared:
            err = InvalidField(
                f"The submit did not declare an image `{frame.slot}` #{frame.index}."
            )
            if record.receiving and conn.id in record.uploaders:
                self._fail(record, err)
            else:
                conn.send_error(err, record.job_id)
            return
        if not record.receiving or key not in record.expected:
            return  # already in (from another connection's identical submit), or cancelled
        record.expected.discard(key)
        try:
            record.frames[key] = frame.image()
        except BrushlinkError as err:
            self.book.remove(record.job_id)
            self.refuse(record.job_id)
            conn.send_error(err, record.job_id)
            return
        if not record.expected:
            await self._complete(record)

    async def _complete(self, record: JobRecord) -> None:
        """Every frame is in: decode off the loop, then accept and queue (unless cancelled)."""
        frames, record.frames = record.frames, {}
        started = time.perf_counter()
        try:
            work = await asyncio.to_thread(
                decode_images,
                record.engine,
                record.request,
                record.card,
                frames,
                record.job_id,
                record.seed,
                self.config.limits,
            )
        except BrushlinkError as err:
            self._fail(record, err)
            return
        if record.done:  # cancelled while its images were decoded
            return
        record.work = work
        record.decode_s = time.perf_counter() - started
        record.state = JobState.ACCEPTED
        log.info(
            "job %s accepted: %s with %s", record.job_id, record.request.kind, record.card.name
        )
        record.emit(Accepted(record.job_id, model=record.card.name, seed=record.seed))
        self.scheduler.enqueue(record)

    def _fail(self, record: JobRecord, err: BrushlinkError) -> None:
        """A job refused before it was queued: answer every watcher, forget the job (the id may
        be submitted again, fixed) and drop frames still coming for it."""
        self.book.remove(record.job_id)
        self._refused.append(record.job_id)
        record.emit(Failed.from_error(record.job_id, err))

    def refuse(self, job_id: str) -> None:
        """A submit was refused: drop the image frames that follow it (they name the job by
        its UUID's bytes, so by its canonical spelling)."""
        self._refused.append(job_id)
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            self._refused.append(str(uuid.UUID(job_id)))

    # ------------------------------------------------------------------ cancel / collect

    def cancel(self, conn: Peer, job_id: str) -> None:
        record = self.book.get(job_id)
        if record is None:
            conn.send_error(UnknownJob(), job_id)
            return
        if record.state in (JobState.SUBMITTED, JobState.ACCEPTED):
            # not queued yet: its frames may still arrive, and are dropped
            record.cancel_flag.set()
            self._refused.append(job_id)
            record.emit(Cancelled(job_id))
        elif not record.done:
            self.scheduler.cancel(record)

    def collect(self, conn: Peer, job_id: str) -> bool:
        """Attach ``conn`` to the job (it gets the job's events from now on, as every other
        connection attached to it does) and tell it where the job stands."""
        record = self.book.get(job_id)
        if record is None:
            return False
        if record.owner_id not in record.watchers:
            record.owner_id = conn.id  # its submitter is gone: the job counts against this one
        record.watchers[conn.id] = conn.send
        if record.final_frames is not None:
            conn.send(transcode(record.final_frames, conn.encoding))
            return True
        if record.state is JobState.SUBMITTED:
            return True  # its answer follows once its images are decoded
        frames: list[str | bytes] = [
            Accepted(job_id, model=record.card.name, seed=record.seed).encode()
        ]
        if record.state is JobState.STARTED:
            frames.append(Started(job_id).encode())
        else:
            frames.append(Queued(job_id, position=self.scheduler.position(record)).encode())
        conn.send(frames)
        return True

    def connection_closed(self, conn: Peer) -> None:
        for record in self.book.detach(conn.id):
            # its images can no longer arrive: a connection that attached to it without
            # sending them hears that the server does not hold it (a client then resubmits)
            record.emit(
                Failed.from_error(
                    record.job_id,
                    UnknownJob(
                        "The connection sending this job's images closed before they all arrived."
                    ),
                )
            )

    # ------------------------------------------------------------------ serving

    async def serve(
        self,
        ready: Callable[[str], None] | None = None,
        stop: asyncio.Event | None = None,
        doors: Sequence[DoorOpener] = (),
    ) -> None:
        """Listen until ``stop`` is set; ``doors`` open once the websocket listens and close
        before the engines unload."""

        async def handler(ws: ServerConnection) -> None:
            await Connection(ws, self, self.config.limits).serve()

        await asyncio.to_thread(self.registry.refresh)  # imports and scans before "listening"
        self._scanned = time.monotonic()
        await self.scheduler.start()
        async with serve(
            handler,
            self.config.host,
            self.config.port,
            process_request=process_request(self),
            max_size=self.config.limits.max_message_bytes,
            compression=None,
            ping_interval=20,
            ping_timeout=60,
        ) as server:
            port = server.sockets[0].getsockname()[1]
            self.policy = replace(self.policy, port=port)
            host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
            url = f"ws://{host}:{port}{PATH}"
            self.doors = [await open_door(self) for open_door in doors]
            log.info(
                "listening on %s (workers: %s)",
                url,
                ", ".join(f"{w.name} on {w.device}" for w in self.scheduler.workers()) or "none",
            )
            if ready is not None:
                ready(url)
            try:
                await (stop or asyncio.Event()).wait()
            finally:
                for door in self.doors:
                    await door.stop()
        await self.scheduler.stop()
        for engine in self.registry.engines():
            engine.unload()  # the front's own (a local worker may share them)
