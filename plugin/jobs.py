"""The client's view of its jobs, as a state machine with no I/O.

    submitted -> accepted -> queued -> started -> result | failed | cancelled
                     (queued and started may repeat after a reconnect's `collect`)

Binary frames arrive before the JSON event that names them (a preview's PNG, then `preview`;
each result PNG, then `result`); the tracker holds them until that event and attaches them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from .frames import BinaryFrame, Image
from .protocol import (
    FINAL_EVENTS,
    Accepted,
    Cancelled,
    Failed,
    JobEvent,
    Preview,
    Progress,
    Queued,
    Result,
    Started,
)


class JobState(enum.Enum):
    """Where a job stands; the client and the server use the same states."""

    SUBMITTED = "submitted"  # sent (the server: its image frames are still arriving)
    ACCEPTED = "accepted"
    QUEUED = "queued"
    STARTED = "started"
    DONE = "done"  # it has its final answer: result, failed or cancelled


_STATE_OF = {Accepted: JobState.ACCEPTED, Queued: JobState.QUEUED, Started: JobState.STARTED}


@dataclass
class TrackedJob:
    job_id: str
    state: JobState = JobState.SUBMITTED
    final: JobEvent | None = None
    frames: dict[tuple[str, int], Image] = field(default_factory=dict)
    last_progress: tuple[int, int] = (0, 0)


class JobTracker:
    def __init__(self) -> None:
        self.jobs: dict[str, TrackedJob] = {}

    def submitted(self, job_id: str) -> TrackedJob:
        return self.jobs.setdefault(job_id, TrackedJob(job_id))

    def unfinished(self) -> list[str]:
        return [j.job_id for j in self.jobs.values() if j.state is not JobState.DONE]

    def forget(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def receive_binary(self, frame: BinaryFrame) -> None:
        job = self.jobs.get(frame.job_id)
        if job is not None and job.state is not JobState.DONE:
            job.frames[(frame.slot, frame.index)] = frame.image()

    def receive(self, event: JobEvent) -> JobEvent | None:
        """Apply a server event; returns it (with images attached) or None if it is stale."""
        job = self.jobs.get(event.job_id)
        if job is None or job.state is JobState.DONE:
            return None  # not ours, or a duplicate after the final answer
        if isinstance(event, Preview):
            event.image = job.frames.pop(("preview", 0), None)
            return event if event.image is not None else None
        if isinstance(event, Progress):
            job.last_progress = (event.step, event.total)
            job.state = JobState.STARTED
            return event
        if isinstance(event, Result):
            for item in event.images:
                item.data = job.frames.pop(("result", item.index), None)
        if isinstance(event, FINAL_EVENTS):
            job.state = JobState.DONE
            job.final = event
            job.frames.clear()
            return event
        state = _STATE_OF.get(type(event))
        if state is not None:
            job.state = state
        return event


def is_final(event: JobEvent) -> bool:
    return isinstance(event, (Result, Failed, Cancelled))
