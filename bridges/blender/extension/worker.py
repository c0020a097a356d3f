"""Blender's way back to its main thread, for the host job runner of the client core.

``bpy`` may only be touched from the main thread. Jobs run through
``brushlink.plugin.host.HostRunner`` (one connection per server, shared by the jobs), which
hands every event and ending to a ``Mailbox``; a ``bpy.app.timers`` callback drains it on the
main thread into the job's placement (which writes images and node graphs). In background mode
(``blender -b``, bpy as a module) there is no event loop to drive timers, so ``start`` drains
the mailbox itself until the job is over: scripts and tests get the finished result when the
operator returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import bpy

from brushlink.plugin.errors import BrushlinkError, JobWasCancelled
from brushlink.plugin.host import HostRunner, Mailbox, RunningJob
from brushlink.plugin.protocol import Message, Preview, Progress, Result, Welcome
from brushlink.plugin.request import Job

from . import preferences

POLL_SECONDS = 0.1
CONNECT_SECONDS = 10.0  # opening a connection
CLOSE_WAIT_SECONDS = 15.0  # unregistering waits this long, at most, for the job threads


class Placement:
    """Where one job's output goes; every method runs on the main thread."""

    label = "job"

    def progress(self, step: int, total: int) -> None:  # noqa: B027 - optional hook
        pass

    def preview(self, png: bytes) -> None:  # noqa: B027 - optional hook
        pass

    def result(self, result: Result) -> str:
        """Apply the result; returns the sentence reported to the artist."""
        raise NotImplementedError

    def discard(self) -> None:  # noqa: B027 - optional hook
        """Undo whatever previews changed: the job failed or was cancelled."""


@dataclass
class Outcome:
    """How a job ended, as reported: level is INFO, WARNING or ERROR."""

    level: str
    message: str


Reporter = Callable[[Outcome], None]


@dataclass
class _Job:
    job: Job
    placement: Placement
    report: Reporter
    scene_name: str
    blocking: bool = False
    running: RunningJob | None = None
    outcome: Outcome | None = None


class Worker:
    def __init__(self) -> None:
        self.mailbox = Mailbox()
        self._jobs: dict[str, _Job] = {}
        self._runner: HostRunner | None = None
        # None: block only in background mode. True/False force it (a script in the UI that
        # wants the result before it goes on sets True).
        self.block: bool | None = None
        # bpy.app.timers matches callbacks by identity: keep one bound method for (un)register.
        self._timer = self._tick

    def _runner_for(self, url: str, token: str | None) -> HostRunner:
        """The runner for the preferences' server; a changed URL or token gets a new one."""
        old = self._runner
        if old is None or (old.url, old.token) != (url, token):
            if old is not None:
                old.close(wait=0)
            self._runner = HostRunner(
                url, token, deliver=self.mailbox.put, open_timeout=CONNECT_SECONDS
            )
        return self._runner

    def welcome(self, fresh: bool = False) -> Welcome:
        """Main thread: what the server offers (models, add-ons), from the shared connection's
        greeting; connects if there is none (``fresh``: a new connection, unless jobs run).
        Raises ``ServerUnavailable``, ``Unauthorized``."""
        if fresh and not self._jobs and self._runner is not None:
            self._runner.close(wait=0)
            self._runner = None
        return self._runner_for(preferences.server_url(), preferences.server_token()).welcome()

    def close(self) -> None:
        """Unregistering: let go of every job, drop the timer, close the connection (waiting
        briefly for its threads), so nothing of the extension still runs afterwards."""
        for job in list(self._jobs.values()):
            if job.running is not None:
                job.running.abandon()
        self._jobs.clear()
        if bpy.app.timers.is_registered(self._timer):
            bpy.app.timers.unregister(self._timer)
        if self._runner is not None:
            self._runner.close(wait=CLOSE_WAIT_SECONDS)
            self._runner = None

    # ------------------------------------------------------------------ jobs

    def start(
        self, job: Job, placement: Placement, report: Reporter, scene: bpy.types.Scene
    ) -> Outcome | None:
        """Run a job. Blocking (background mode): return its outcome, which the caller reports.
        Otherwise return None at once; ``report`` gets the outcome when the job ends."""
        blocking = self.block if self.block is not None else bpy.app.background
        record = _Job(job, placement, report, scene.name, blocking)
        self._jobs[job.job_id] = record
        _set_status(scene, f"{placement.label}: connecting…", 0.0, running=True)
        runner = self._runner_for(preferences.server_url(), preferences.server_token())

        def on_done(result: Result | None, error: BrushlinkError | None) -> None:
            self._ended(record, result, error)

        record.running = runner.start(job, on_done, lambda event: self._event(record, event))
        if blocking:
            while record.outcome is None:
                self.drain()
                time.sleep(0.02)
            return record.outcome
        if not bpy.app.timers.is_registered(self._timer):
            bpy.app.timers.register(self._timer, first_interval=POLL_SECONDS, persistent=True)
        return None

    def running(self) -> list[str]:
        return list(self._jobs)

    def cancel(self, job_id: str | None = None) -> int:
        """Main thread: end a job (all of them when ``job_id`` is None) at once.

        The job is discarded and reported cancelled here, whatever the server does; telling the
        server (so it frees the device) happens in the background and may fail quietly, e.g.
        when the server is gone.
        """
        ids = [job_id] if job_id else list(self._jobs)
        for one in ids:
            job = self._jobs.get(one)
            if job is not None and job.running is not None:
                job.running.cancel()
        self.drain()  # the cancelled endings are waiting there: report them now
        return len(ids)

    # ------------------------------------------------------------------ main thread

    def drain(self) -> None:
        """Main thread: apply what the jobs' threads handed over (events, endings)."""
        self.mailbox.drain()

    def _tick(self) -> float | None:
        self.drain()
        _redraw()
        return POLL_SECONDS if self._jobs else None

    def _event(self, job: _Job, event: Message) -> None:
        scene = bpy.data.scenes.get(job.scene_name)
        try:
            if isinstance(event, Progress):
                step, total = event.step, event.total
                job.placement.progress(step, total)
                if scene is not None:
                    label = job.placement.label
                    _set_status(scene, f"{label}: step {step}/{total}", step / max(total, 1), True)
            elif isinstance(event, Preview) and event.image:
                job.placement.preview(event.image)
        except Exception as exc:  # a preview that cannot be shown: the job goes on
            print(f"brushlink: could not show progress: {exc}")

    def _ended(self, job: _Job, result: Result | None, error: BrushlinkError | None) -> None:
        scene = bpy.data.scenes.get(job.scene_name)
        label = job.placement.label
        try:
            if result is not None:
                self._finish(job, scene, Outcome("INFO", job.placement.result(result)))
                return
        except Exception as exc:  # placing failed: undo previews, report, keep Blender going
            import traceback

            traceback.print_exc()
            job.placement.discard()
            self._finish(job, scene, Outcome("ERROR", f"Could not place the result: {exc}"))
            return
        job.placement.discard()
        if isinstance(error, JobWasCancelled):
            self._finish(job, scene, Outcome("WARNING", f"{label} cancelled."))
        else:
            code = getattr(error, "code", "error")
            text = error.message if error is not None else "no result"
            self._finish(job, scene, Outcome("ERROR", f"{label} failed ({code}): {text}"))

    def _finish(self, job: _Job, scene: bpy.types.Scene | None, outcome: Outcome) -> None:
        job.outcome = outcome
        self._jobs.pop(job.job.job_id, None)
        if scene is not None:
            _set_status(scene, outcome.message, 1.0 if outcome.level == "INFO" else 0.0, False)
        if not job.blocking:
            job.report(outcome)


def _set_status(scene: bpy.types.Scene, text: str, progress: float, running: bool) -> None:
    props = scene.brushlink
    props.status = text
    props.progress = progress
    props.running = running


def _redraw() -> None:
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "IMAGE_EDITOR", "NODE_EDITOR"}:
                area.tag_redraw()


WORKER = Worker()
