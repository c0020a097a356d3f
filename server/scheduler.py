"""The job queue and its dispatch to workers.

Jobs wait in one priority queue (higher ``priority`` first, then arrival), whatever the number
of workers. Whenever a worker is free, the job at the head of the queue goes to a free worker
that holds its model warm, else to the least loaded one (``choose``). Workers are local devices
or Ray actors (``workers/``); what a job's client hears does not depend on which.

Each job gets exactly one final answer. A worker lost mid-job (its process or node died) puts
the job back at its place in the queue, to run again from the start on another worker (the
client sees `queued`, `started` again and progress from 0); events from an attempt that is no
longer the job's current one are dropped.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Sequence

from brushlink.plugin.errors import BrushlinkError, EngineError, InternalError
from brushlink.plugin.jobs import JobState
from brushlink.plugin.protocol import (
    Cancelled,
    Failed,
    Preview,
    Progress,
    Queued,
    Result,
    Started,
    WorkerInfo,
)

from .engines.base import JobCancelled
from .jobs import JobRecord
from .workers.base import Pool, Worker, WorkerLost

log = logging.getLogger("brushlink.scheduler")

MAX_ATTEMPTS = 3  # a job whose workers keep dying (one that kills them?) fails after this many


def choose(model: str, free: Sequence[Worker]) -> Worker:
    """Where a job for ``model`` runs among the free workers: one holding the model warm, else
    the least loaded; ties go to the one holding fewer models (its memory is the least
    spoken for, and the others stay free for their own models), then the one that ran fewer."""
    warm = [w for w in free if model in w.warm()]
    return min(warm or free, key=lambda w: (w.load(), len(w.warm()), w.jobs_run))


class _Attempt:
    """The events of one run of a job, relayed only while it is the job's current run."""

    def __init__(self, scheduler: Scheduler, record: JobRecord, number: int) -> None:
        self.scheduler, self.record, self.number = scheduler, record, number

    @property
    def current(self) -> bool:
        return self.scheduler._attempts.get(self.record.job_id) == self.number

    def progress(self, step: int, total: int) -> None:
        if self.current and not self.record.done:
            self.record.last_progress = (step, total)
            self.record.emit(Progress(self.record.job_id, step, total))

    def preview(self, frame: bytes, step: int, total: int) -> None:
        if self.current and not self.record.done:
            self.record.emit(Preview(self.record.job_id, step=step, total=total), [frame])


class Scheduler:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self._heap: list[tuple[int, int, JobRecord]] = []
        self._order = itertools.count()
        self._keys: dict[str, int] = {}  # job id -> its arrival number (kept when it reruns)
        self._attempts: dict[str, int] = {}  # job id -> its current attempt
        self._wakeup = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.pool.start(self._wakeup.set)
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())

    async def stop(self) -> None:
        for worker in self.pool.workers:
            if worker.running is not None:
                worker.running.cancel_flag.set()
                worker.cancel(worker.running)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        for task in list(self._tasks):
            task.cancel()
        await self.pool.stop()

    @property
    def running(self) -> list[JobRecord]:
        return [w.running for w in self.pool.workers if w.running is not None]

    def workers(self) -> list[WorkerInfo]:
        return [w.info() for w in self.pool.workers]

    # ------------------------------------------------------------------ queue

    def enqueue(self, record: JobRecord) -> None:
        record.state = JobState.QUEUED
        key = self._keys.setdefault(record.job_id, next(self._order))
        heapq.heappush(self._heap, (-record.priority, key, record))
        record.emit(Queued(record.job_id, position=self.position(record)))
        self._wakeup.set()

    def _all_busy(self) -> bool:
        return not any(w.free for w in self.pool.workers)

    def position(self, record: JobRecord) -> int:
        """How many jobs will start before this one (one that is running counts when every
        worker is busy: this job waits for it)."""
        key = (-record.priority, self._keys.get(record.job_id, 0))
        ahead = sum(1 for item in self._heap if item[2] is not record and item[:2] < key)
        return ahead + (1 if self.running and self._all_busy() else 0)

    def cancel(self, record: JobRecord) -> None:
        """Set the flag; a queued job is answered at once, a running one at its next step."""
        record.cancel_flag.set()
        if record.state is JobState.QUEUED:
            self._heap = [item for item in self._heap if item[2] is not record]
            heapq.heapify(self._heap)
            self._finish(record, Cancelled(record.job_id))
            return
        for worker in self.pool.workers:
            if worker.running is record:
                worker.cancel(record)

    def _finish(
        self,
        record: JobRecord,
        event: Result | Failed | Cancelled,
        frames: list[bytes] | None = None,
    ) -> None:
        """The job's one final answer (a later one, from an attempt given up on, is dropped)."""
        self._keys.pop(record.job_id, None)
        self._attempts.pop(record.job_id, None)
        self.pool.forget(record.job_id)
        if not record.done:
            record.emit(event, frames)

    # ------------------------------------------------------------------ dispatch

    async def _dispatch(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            started = False
            while self._heap:
                free = [w for w in self.pool.workers if w.free]
                if not free:
                    break
                *_, record = heapq.heappop(self._heap)
                worker = choose(record.card.name, free)
                worker.running = record
                started = True
                task = asyncio.get_running_loop().create_task(self._run(record, worker))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if started:
                busy = 1 if self._all_busy() else 0
                for index, (_, _, other) in enumerate(sorted(self._heap)):
                    other.emit(Queued(other.job_id, position=index + busy))

    async def _run(self, record: JobRecord, worker: Worker) -> None:
        try:
            await self._attempt(record, worker)
        except Exception:  # the scheduler must survive anything a job does
            log.exception("job %s crashed its dispatch", record.job_id)
            self._finish(record, Failed.from_error(record.job_id, InternalError()))
        finally:
            worker.running = None
            worker.jobs_run += 1
            self._wakeup.set()

    async def _attempt(self, record: JobRecord, worker: Worker) -> None:
        number = self._attempts.get(record.job_id, 0) + 1
        self._attempts[record.job_id] = number
        attempt = _Attempt(self, record, number)
        dispatched = time.monotonic()
        record.state = JobState.STARTED
        record.emit(Started(record.job_id))
        try:
            outcome = await worker.run(record, attempt)
        except JobCancelled:
            self._finish(record, Cancelled(record.job_id))
            return
        except WorkerLost as lost:
            self.pool.lost(worker)
            self._rerun(record, worker, number, lost)
            return
        except BrushlinkError as err:
            self._finish(record, Failed.from_error(record.job_id, err))
            return
        except Exception:
            log.exception("engine %s failed on job %s", record.engine.name, record.job_id)
            self._finish(record, Failed.from_error(record.job_id, InternalError()))
            return
        timings = {
            "decode_s": record.decode_s,
            "queued_s": dispatched - record.arrived,
            "run_s": outcome.run_s,
            "encode_s": outcome.encode_s,
            **outcome.timings,
        }
        metadata = {
            "engine": record.engine.name,
            "model": record.card.name,
            "seed": record.seed,
            "device": worker.device,
            "worker": worker.name,
            "node": worker.node,
            "attempts": number,
            "timings": {k: round(v, 4) for k, v in timings.items()},
            **outcome.metadata,
        }
        result = Result(record.job_id, images=outcome.images, metadata=metadata)
        self._finish(record, result, outcome.frames)

    def _rerun(self, record: JobRecord, worker: Worker, number: int, lost: WorkerLost) -> None:
        log.warning("worker %s was lost running job %s: %s", worker.name, record.job_id, lost)
        if record.cancel_flag.is_set():
            self._finish(record, Cancelled(record.job_id))
        elif number >= MAX_ATTEMPTS:
            err = EngineError(
                f"The job's worker was lost {number} times (last: {worker.name} on "
                f"{worker.node}); it was not run again."
            )
            self._finish(record, Failed.from_error(record.job_id, err))
        elif not record.done:
            record.last_progress = (0, 0)
            self.enqueue(record)  # at its old place: it keeps its priority and arrival
