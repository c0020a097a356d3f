"""The server application: the one owner of the registry, the job book and the scheduler.

Life of a submit (see docs/protocol.md):
  1. header: shape and values checked, model resolved         -> `failed` at once if wrong
  2. binary frames collected until every declared slot is in
  3. sizes from PNG headers, decoding, engine check (off-loop) -> `failed` if wrong
  4. `accepted`, then `queued` with the position; the scheduler takes it from there
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from websockets.asyncio.server import ServerConnection, serve

from brushlink.plugin.errors import (
    BrushlinkError,
    DuplicateJob,
    InvalidField,
    QueueFull,
    UnknownJob,
)
from brushlink.plugin.frames import BinaryFrame, job_id_bytes
from brushlink.plugin.protocol import (
    PATH,
    PROTOCOL_VERSION,
    Accepted,
    Queued,
    Started,
    Submit,
    Welcome,
)

from .auth import HandshakePolicy
from .config import ServerConfig
from .engines.registry import EngineRegistry
from .jobs import JobBook, JobRecord
from .scheduler import Scheduler
from .transport import Connection, process_request
from .validate import CheckedSpec, check_spec, prepare

log = logging.getLogger("brushlink.server")

MODEL_RESCAN_S = 10.0  # how stale the model list may get before a new connection rescans it

CAPABILITIES = ["binary-frames", "progress", "previews", "cancel", "collect", "priority"]


@dataclass
class PendingSubmit:
    """A submit whose binary frames are still arriving."""

    submit: Submit
    checked: CheckedSpec | None  # None: a resubmit of a known job, only to re-attach
    expected: set[tuple[str, int]]
    owner: Connection | None = None
    frames: dict[tuple[str, int], bytes] = field(default_factory=dict)


class App:
    def __init__(self, config: ServerConfig, registry: EngineRegistry, token: str, device: str):
        self.config = config
        self.registry = registry
        self.device = device
        self.book = JobBook(config.result_ttl_s)
        self.scheduler = Scheduler(device)
        self.policy = HandshakePolicy(
            token=token,
            host=config.host,
            port=config.port,
            allowed_origins=config.allowed_origins,
            allowed_hosts=config.allowed_hosts,
        )
        self._pending: dict[str, PendingSubmit] = {}
        self._refused: deque[str] = deque(maxlen=1024)  # ids whose stray frames are dropped
        self._scanned = 0.0
        self._rescan: asyncio.Task[object] | None = None

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

    def welcome(self) -> Welcome:
        limits = self.config.limits.to_wire()
        models = self.registry.models()
        kinds = sorted({k for m in models for k in m.kinds})
        return Welcome(
            version=PROTOCOL_VERSION,
            capabilities=[*kinds, *CAPABILITIES],
            models=[m.to_wire() for m in models],
            limits=limits,
        )

    # ------------------------------------------------------------------ submit

    async def submit(self, conn: Connection, submit: Submit) -> None:
        job_id = submit.job_id
        try:
            job_id_bytes(job_id)
            refs = submit.image_refs()
            expected = {(r.slot, r.index) for r in refs}
            existing = self.book.get(job_id)
            if existing is not None or job_id in self._pending:
                wire = submit.to_wire()
                if existing is None or existing.submit_wire != wire:
                    raise DuplicateJob(field="job_id")
                # The same request again (a client retrying after a reconnect): re-attach.
                self._pending[job_id] = PendingSubmit(submit, None, expected, conn)
            else:
                if self.book.pending_for(conn.id) + self._pending_for(conn) >= (
                    self.config.limits.max_queued_per_client
                ):
                    raise QueueFull(
                        f"This connection already has {self.config.limits.max_queued_per_client} "
                        "unfinished jobs; wait for some to finish."
                    )
                checked = check_spec(submit.spec(), refs, self.registry, self.config.limits)
                self._pending[job_id] = PendingSubmit(submit, checked, expected, conn)
        except BrushlinkError as err:
            self._refused.append(str(job_id))
            conn.send_error(err, str(job_id))
            return
        if not expected:
            await self._complete(conn, job_id)

    def _pending_for(self, conn: Connection) -> int:
        return sum(1 for p in self._pending.values() if p.owner is conn)

    async def receive_frame(self, conn: Connection, frame: BinaryFrame) -> None:
        pending = self._pending.get(frame.job_id)
        if pending is None:
            if frame.job_id not in self._refused:
                conn.send_error(
                    InvalidField("A binary frame arrived for a job that was not submitted."),
                    frame.job_id,
                )
            return
        key = (frame.slot, frame.index)
        if key not in pending.expected:
            del self._pending[frame.job_id]
            self._refused.append(frame.job_id)
            conn.send_error(
                InvalidField(f"The submit did not declare an image `{frame.slot}` #{frame.index}."),
                frame.job_id,
            )
            return
        pending.frames[key] = frame.payload
        if len(pending.frames) == len(pending.expected):
            await self._complete(conn, frame.job_id)

    async def _complete(self, conn: Connection, job_id: str) -> None:
        pending = self._pending.pop(job_id)
        if pending.checked is None:
            self.collect(conn, job_id)
            return
        started = time.perf_counter()
        try:
            job = await asyncio.to_thread(
                prepare, pending.checked, pending.frames, job_id, self.config.limits
            )
        except BrushlinkError as err:
            self._refused.append(job_id)
            conn.send_error(err, job_id)
            return
        record = JobRecord(
            job_id=job_id,
            submit_wire=pending.submit.to_wire(),
            engine=pending.checked.engine,
            job=job,
            owner=conn.send,
            owner_id=conn.id,
            decode_s=time.perf_counter() - started,
        )
        self.book.add(record)
        record.emit(Accepted(job_id, model=job.model.name, seed=job.seed))
        self.scheduler.enqueue(record)

    # ------------------------------------------------------------------ cancel / collect

    def cancel(self, conn: Connection, job_id: str) -> None:
        record = self.book.get(job_id)
        if record is None:
            conn.send_error(UnknownJob(), job_id)
            return
        if record.state != "done":
            self.scheduler.cancel(record)

    def collect(self, conn: Connection, job_id: str) -> bool:
        """Make ``conn`` the job's owner and tell it where the job stands."""
        record = self.book.get(job_id)
        if record is None:
            return False
        record.owner = conn.send
        record.owner_id = conn.id
        if record.final_frames is not None:
            conn.send(record.final_frames)
            return True
        frames = [Accepted(job_id, model=record.job.model.name, seed=record.job.seed).encode()]
        if record.state == "queued":
            frames.append(Queued(job_id, position=self.scheduler.position(record)).encode())
        else:
            frames.append(Started(job_id).encode())
        conn.send(frames)
        return True

    def connection_closed(self, conn: Connection) -> None:
        self.book.detach(conn.id)
        for job_id in [j for j, p in self._pending.items() if p.owner is conn]:
            del self._pending[job_id]

    # ------------------------------------------------------------------ serving

    async def serve(
        self, ready: Callable[[str], None] | None = None, stop: asyncio.Event | None = None
    ) -> None:
        async def handler(ws: ServerConnection) -> None:
            await Connection(ws, self).serve()

        await asyncio.to_thread(self.registry.refresh)  # imports and scans before "listening"
        self._scanned = time.monotonic()
        self.scheduler.start()
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
            log.info("listening on %s (device %s)", url, self.device)
            if ready is not None:
                ready(url)
            await (stop or asyncio.Event()).wait()
        await self.scheduler.stop()
        for engine in self.registry.engines():
            engine.unload()
