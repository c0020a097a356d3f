"""The server's record of each job: its owner, its cancel flag and, once done, its final answer.

A record outlives its connection: the final event and result frames stay in ``JobBook`` for
``result_ttl_s`` so a client that reconnects can ``collect`` them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from brushlink.plugin.protocol import FINAL_EVENTS, JobEvent

from .engines.base import Engine, EngineJob

# Something that accepts outgoing frames (a connection's send queue).
Sink = Callable[[list[str | bytes]], None]


@dataclass
class JobRecord:
    job_id: str
    submit_wire: dict[str, Any]  # the submit header as received, to recognise a resubmit
    engine: Engine
    job: EngineJob
    owner: Sink | None
    owner_id: int
    arrived: float = field(default_factory=time.monotonic)
    state: str = "queued"  # queued | started | done
    cancel_flag: threading.Event = field(default_factory=threading.Event)
    final_frames: list[str | bytes] | None = None
    finished_at: float | None = None
    last_progress: tuple[int, int] = (0, 0)
    decode_s: float = 0.0  # time spent checking and decoding the request's images

    @property
    def priority(self) -> int:
        return self.job.spec.priority

    def emit(self, event: JobEvent, binaries: list[bytes] | None = None) -> None:
        """Send an event (binary frames first, then the JSON naming them) to the owner."""
        frames: list[str | bytes] = [*(binaries or []), event.encode()]
        if isinstance(event, FINAL_EVENTS):
            self.state = "done"
            self.final_frames = frames
            self.finished_at = time.monotonic()
        if self.owner is not None:
            self.owner(frames)


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

    def pending_for(self, owner_id: int) -> int:
        return sum(
            1 for r in self._records.values() if r.owner_id == owner_id and r.state != "done"
        )

    def detach(self, owner_id: int) -> None:
        """The owner's connection closed: keep its jobs running and their results stored."""
        for record in self._records.values():
            if record.owner_id == owner_id:
                record.owner = None

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
