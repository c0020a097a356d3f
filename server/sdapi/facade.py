"""The A1111 door's one client of the App: an in-process peer, like a websocket connection.

The facade submits each job exactly as a bridge's connection does, through ``App.submit`` and
``App.receive_frame`` (the checks of ``validate.py``, the job book, the scheduler, priorities,
cancel); the App answers through ``send`` with the frames a socket would carry, which the
client core's ``JobTracker`` assembles. Nothing is validated or queued a second way.

A1111 runs one request at a time and reports one global progress; the facade keeps the
requests it is serving (``Task``: one per HTTP request, one or more brushlink jobs) in arrival
order, and ``progress``, ``interrupt`` and ``skip`` act on the first of them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from brushlink.plugin.errors import BrushlinkError, JobWasCancelled
from brushlink.plugin.frames import BinaryFrame, decode_frame, to_png
from brushlink.plugin.jobs import JobTracker
from brushlink.plugin.protocol import (
    Cancelled,
    Failed,
    JobEvent,
    Preview,
    Progress,
    Queued,
    Result,
    Started,
    Submit,
    decode_message,
)
from brushlink.plugin.request import Job

from ..transport import new_peer_id

if TYPE_CHECKING:
    from ..app import App

log = logging.getLogger("brushlink.sdapi")

Outcome = Result | BrushlinkError


@dataclass
class Task:
    """One A1111 request being served: its jobs, run in order, and where they stand."""

    label: str  # txt2img, img2img, extras
    job_ids: list[str]
    started_at: float = field(default_factory=time.monotonic)
    finished: int = 0
    running: str | None = None
    step: tuple[int, int] = (0, 0)
    position: int = 0  # jobs ahead in the server's queue, while waiting
    preview: bytes | None = None  # the latest preview PNG
    interrupted: bool = False
    skipped: bool = False


class Facade:
    """An in-process ``Peer`` of the App that awaits its jobs' answers."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.id = new_peer_id()
        self.encoding = "png"  # its clients take base64 PNG: results come as PNG
        self.model: str | None = None  # `sd_model_checkpoint`: the default model of its jobs
        self.tasks: list[Task] = []
        self._tracker = JobTracker()
        self._waiting: dict[str, asyncio.Future[Outcome]] = {}
        self._task_of: dict[str, Task] = {}

    # ------------------------------------------------------------------ the Peer side

    def send(self, frames: list[str | bytes]) -> None:
        for frame in frames:
            try:
                if isinstance(frame, bytes):
                    self._tracker.receive_binary(decode_frame(frame))
                    continue
                message = decode_message(frame)
            except BrushlinkError:
                log.exception("the facade could not read a frame from the server")
                continue
            if isinstance(message, JobEvent):
                event = self._tracker.receive(message)
                if event is not None:
                    self._on_event(event)

    def send_error(self, err: BrushlinkError, job_id: str | None = None) -> None:
        if job_id is None:
            log.warning("the server refused a message of the A1111 door: %s", err.message)
            return
        self._finish(job_id, err)

    def _on_event(self, event: JobEvent) -> None:
        task = self._task_of.get(event.job_id)
        if isinstance(event, Result):
            self._finish(event.job_id, event)
        elif isinstance(event, Failed):
            self._finish(event.job_id, event.exception())
        elif isinstance(event, Cancelled):
            self._finish(event.job_id, JobWasCancelled())
        elif task is None:
            return
        elif isinstance(event, Started):
            task.running, task.step, task.position = event.job_id, (0, 0), 0
        elif isinstance(event, Progress):
            task.running, task.step = event.job_id, (event.step, event.total)
        elif isinstance(event, Preview):
            task.preview = to_png(event.image) if event.image else None
            if event.total:
                task.step = (event.step, event.total)
        elif isinstance(event, Queued):
            task.position = event.position

    def _finish(self, job_id: str, outcome: Outcome) -> None:
        future = self._waiting.pop(job_id, None)
        self._tracker.forget(job_id)
        task = self._task_of.pop(job_id, None)
        if task is not None:
            task.finished += 1
            if task.running == job_id:
                task.running, task.step = None, (0, 0)
        if future is not None and not future.done():
            future.set_result(outcome)

    # ------------------------------------------------------------------ running jobs

    async def run(self, label: str, jobs: list[Job]) -> tuple[list[Outcome], Task]:
        """Submit every job (they queue in order), then wait for all of their answers."""
        task = Task(label, [job.job_id for job in jobs])
        self.tasks.append(task)
        loop = asyncio.get_running_loop()
        futures = []
        try:
            for job in jobs:
                future: asyncio.Future[Outcome] = loop.create_future()
                self._waiting[job.job_id] = future
                self._task_of[job.job_id] = task
                self._tracker.submitted(job.job_id)
                futures.append(future)
                await self._submit(job)
                if future.done() and isinstance(future.result(), BrushlinkError):
                    break  # refused before queueing: the others would be refused alike
            outcomes = list(await asyncio.gather(*futures))
        except asyncio.CancelledError:  # the server is stopping, or the request was dropped
            for job_id in task.job_ids:
                if job_id in self._waiting:
                    self.app.cancel(self, job_id)
            raise
        finally:
            self.tasks.remove(task)
            for job_id in task.job_ids:
                self._task_of.pop(job_id, None)
        return outcomes, task

    async def _submit(self, job: Job) -> None:
        submit = Submit(job_id=job.job_id, job=job.request, images=job.image_refs())
        await self.app.submit(self, submit)
        for slot, index, data in job.slots():
            if job.job_id not in self._waiting:
                return  # refused at its header: the App drops the frames that would follow
            await self.app.receive_frame(self, BinaryFrame(job.job_id, slot, index, to_png(data)))

    # ------------------------------------------------------------------ interrupt / skip

    @property
    def current(self) -> Task | None:
        return self.tasks[0] if self.tasks else None

    def interrupt(self) -> None:
        """Stop the current request: its running job and the ones still waiting."""
        task = self.current
        if task is None:
            return
        task.interrupted = True
        for job_id in task.job_ids:
            if job_id in self._waiting:
                self.app.cancel(self, job_id)

    def skip(self) -> None:
        """Stop the current job of the current request; its other jobs go on."""
        task = self.current
        if task is None:
            return
        job_id = task.running or next((j for j in task.job_ids if j in self._waiting), None)
        if job_id is not None:
            task.skipped = True
            self.app.cancel(self, job_id)
