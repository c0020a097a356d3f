"""The server's record of each job, from its submit header to its final answer, and the book of
all of them.

A record is created as soon as a submit's header passes its checks (state ``SUBMITTED``: its
image frames are arriving), so a second submit of the same id, or a cancel, finds it at any
moment. Every connection that submitted it or attached to it (a resubmit of the same request, a
``collect``) is one of its watchers and gets its events. It outlives its connections: the final
event and result frames stay in ``JobBook`` for ``result_ttl_s`` so a client that reconnects
can ``collect`` them; the decoded images are dropped as soon as the job ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from brushlink.plugin.capabilities import ModelCard
from brushlink.plugin.frames import Image
from brushlink.plugin.jobs import JobState
from brushlink.plugin.protocol import FINAL_EVENTS, JobEvent
from brushlink.plugin.request import Request

from .engines.base import Engine, EngineJob

# Something that accepts outgoing frames (a connection's send queue).
Sink = Callable[[list[str | bytes]], None]


@dataclass
class JobRecord:
    job_id: str
    submit_wire: dict[str, Any]  # the submit header as received, to recognise a resubmit
    request: Request
    engine: Engine
    card: ModelCard
    seed: int
    owner_id: int  # the connection it counts against (max_queued_per_client)
    watchers: dict[int, Sink] = field(default_factory=dict)  # connection id -> its send queue
    uploaders: set[int] = field(default_factory=set)  # connections that send its image frames
    declared: frozenset[tuple[str, int]] = frozenset()  # the image frames its submit names
    expected: set[tuple[str, int]] = field(default_factory=set)  # image frames still to come
    frames: dict[tuple[str, int], Image] = field(default_factory=dict)  # arrived so far
    work: EngineJob | None = None  # the decoded job, while it waits and runs
    arrived: float = field(default_factory=time.monotonic)
    state: JobState = JobState.SUBMITTED
    cancel_flag: threading.Event = field(default_factory=threading.Event)
    final_frames: list[str | bytes] | None = None
    finished_at: float | None = None
    last_progress: tuple[int, int] = (0, 0)
    decode_s: float = 0.0  # time spent checking and decoding the request's images
    encoding: str = "png"  # how its result images travel (the submitting link's choice)

    @property
    def priority(self) -> int:
        return self.request.priority

    @property
    def receiving(self) -> bool:
        """Its image frames are still arriving."""
        return self.state is JobState.SUBMITTED and bool(self.expected)

    @property
    def done(self) -> bool:
        return self.state is JobState.DONE

    def emit(self, event: JobEvent, binaries: list[bytes] | None = None) -> None:
        """Send an event (binary frames first, then the JSON naming them) to every watcher.
        A job has one final event (result, failed or cancelled); nothing is sent after it."""
        if self.done:
            return  # it has its one final answer: nothing follows it (a rerun's stray events)
        frames: list[str | bytes] = [*(binaries or []), event.encode()]
        if isinstance(event, FINAL_EVENTS):
            self.state = JobState.DONE
            self.final_frames = frames
            self.finished_at = time.monotonic()
            self.frames, self.work = {}, None  # inputs are not kept once the job has ended
        for sink in list(self.watchers.values()):
            sink(frames)


class JobBook:
    """All jobs by id; finished ones expire after ``ttl_s``."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._records: dict[str, JobRecord] = {}

    def get(self, job_id: str) -> JobRecord | None:
        self.expire()
        return self._records.get(job_id)

    def add(self, record: JobRecord) -> None:
        self.expire()
        self._records[record.job_id] = record

    def remove(self, job_id: str) -> None:
        self._records.pop(job_id, None)

    def unfinished_for(self, owner_id: int) -> int:
        return sum(1 for r in self._records.values() if r.owner_id == owner_id and not r.done)

    def detach(self, conn_id: int) -> list[JobRecord]:
        """A connection closed: it watches nothing any more. Jobs still receiving frames that
        no open connection sends are dropped and returned (they can never be complete); the
        others keep running and their results stay collectable."""
        dropped = []
        for job_id, record in list(self._records.items()):
            record.watchers.pop(conn_id, None)
            record.uploaders.discard(conn_id)
            if record.receiving and not record.uploaders:
                del self._records[job_id]
                dropped.append(record)
        return dropped

    def expire(self) -> None:
        now = time.monotonic()
        stale = [
            job_id
            for job_id, r in self._records.items()
            if r.finished_at is not None and now - r.finished_at > self.ttl_s
        ]
        for job_id in stale:
            del self._records[job_id]

    def __len__(self) -> int:
        return len(self._records)
