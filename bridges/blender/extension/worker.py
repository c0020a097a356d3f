"""Jobs off Blender's main thread, results back on it.

``bpy`` may only be touched from the main thread, so a job runs on a worker thread through its
own blocking client (one connection per job); every event it produces (preview, result, failure) goes into a queue that a
``bpy.app.timers`` callback drains on the main thread and hands to the job's placement (which
writes images and node graphs). In background mode (``blender -b``, bpy as a module) there is no
event loop to drive timers, so ``start`` blocks until the job is over and drains the queue itself:
scripts and tests get the finished result when the operator returns.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import bpy

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.errors import BrushlinkError, InternalError, JobWasCancelled
from brushlink.plugin.protocol import Message, Preview, Progress, Result
from brushlink.plugin.request import JobRequest

from . import preferences

POLL_SECONDS = 0.1
CONNECT_SECONDS = 10.0  # opening a connection; also a short request (cancel) to a gone server
CLOSE_WAIT_SECONDS = 15.0  # unregistering waits this long, at most, for the job threads
JOB_SECONDS = 24 * 3600.0  # a job may take as long as the model needs; Cancel ends it sooner


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
    request: JobRequest
    placement: Placement
    report: Reporter
    scene_name: str
    blocking: bool = False
    outcome: Outcome | None = None


class Worker:
    def __init__(self) -> None:
        self._events: queue.Queue[tuple[str, str, object]] = queue.Queue()
        self._jobs: dict[str, _Job] = {}
        # One client per job: a job never waits on a connection another job left behind (a
        # client whose server went away keeps trying to reconnect), and Cancel can close it.
        self._clients: dict[str, BlockingClient] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # None: block only in background mode. True/False force it (a script in the UI that
        # wants the result before it goes on sets True).
        self.block: bool | None = None
        # bpy.app.timers matches callbacks by identity: keep one bound method for (un)register.
        self._timer = self._tick

    def close(self) -> None:
        """Unregistering: let go of every job, drop the timer, wait (briefly) for the threads,
        so nothing of the extension still runs when Blender or the add-on goes away."""
        for job_id in list(self._jobs):
            self._let_go(job_id, cancel=True)
        self._jobs.clear()
        if bpy.app.timers.is_registered(self._timer):
            bpy.app.timers.unregister(self._timer)
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]

    def _thread(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name="brushlink", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    # ------------------------------------------------------------------ jobs

    def start(
        self, request: JobRequest, placement: Placement, report: Reporter, scene: bpy.types.Scene
    ) -> Outcome | None:
        """Run a job. Blocking (background mode): return its outcome, which the caller reports.
        Otherwise return None at once; ``report`` gets the outcome when the job ends."""
        blocking = self.block if self.block is not None else bpy.app.background
        job = _Job(request, placement, report, scene.name, blocking)
        self._jobs[request.job_id] = job
        _set_status(scene, f"{placement.label}: connecting…", 0.0, running=True)
        server = (preferences.server_url(), preferences.server_token())  # bpy: main thread only
        if blocking:
            self._run(request, server)
            self.drain()
            return job.outcome
        self._thread(self._run, request, server)
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
            if job is None:
                continue
            self._let_go(one, cancel=True)
            job.placement.discard()
            scene = bpy.data.scenes.get(job.scene_name)
            self._finish(job, scene, Outcome("WARNING", f"{job.placement.label} cancelled."))
        return len(ids)

    def _let_go(self, job_id: str, *, cancel: bool) -> None:
        with self._lock:
            client = self._clients.pop(job_id, None)
        if client is not None:
            self._thread(_close_client, client, job_id if cancel else None)

    def _run(self, request: JobRequest, server: tuple[str, str | None]) -> None:
        """Worker thread: never touches bpy, only the queue."""
        job_id = request.job_id

        def on_event(event: Message) -> None:
            if isinstance(event, Progress):
                self._events.put(("progress", job_id, (event.step, event.total)))
            elif isinstance(event, Preview) and event.image:
                self._events.put(("preview", job_id, event.image))

        client = BlockingClient(*server, open_timeout=CONNECT_SECONDS, timeout=CONNECT_SECONDS)
        with self._lock:
            self._clients[job_id] = client
        try:
            client.connect()  # ServerUnavailable / Unauthorized at once, for the report
            result = client.run(request, on_event, timeout=JOB_SECONDS)
        except JobWasCancelled:
            self._events.put(("cancelled", job_id, None))
        except BrushlinkError as err:
            self._events.put(("error", job_id, err))
        except Exception:  # a bug: keep it out of the artist's face, but in the console
            traceback.print_exc()
            self._events.put(("error", job_id, InternalError()))
        else:
            self._events.put(("result", job_id, result))
        finally:
            with self._lock:
                mine = self._clients.pop(job_id, None)
            if mine is not None:
                mine.close()

    # ------------------------------------------------------------------ main thread

    def _tick(self) -> float | None:
        self.drain()
        _redraw()
        return POLL_SECONDS if self._jobs else None

    def drain(self) -> None:
        """Main thread: apply every queued event to its job."""
        while True:
            try:
                kind, job_id, payload = self._events.get_nowait()
            except queue.Empty:
                return
            job = self._jobs.get(job_id)
            if job is None:
                continue
            scene = bpy.data.scenes.get(job.scene_name)
            try:
                self._apply(job, kind, payload, scene)
            except Exception as exc:  # placing failed: undo previews, report, keep Blender going
                traceback.print_exc()
                job.placement.discard()
                self._finish(job, scene, Outcome("ERROR", f"Could not place the result: {exc}"))

    def _apply(self, job: _Job, kind: str, payload: object, scene: bpy.types.Scene | None) -> None:
        label = job.placement.label
        if kind == "progress":
            step, total = payload  # type: ignore[misc]
            job.placement.progress(step, total)
            if scene is not None:
                _set_status(scene, f"{label}: step {step}/{total}", step / max(total, 1), True)
        elif kind == "preview":
            job.placement.preview(payload)  # type: ignore[arg-type]
        elif kind == "result":
            message = job.placement.result(payload)  # type: ignore[arg-type]
            self._finish(job, scene, Outcome("INFO", message))
        elif kind == "cancelled":
            job.placement.discard()
            self._finish(job, scene, Outcome("WARNING", f"{label} cancelled."))
        elif kind == "error":
            job.placement.discard()
            err = payload
            text = err.message if isinstance(err, BrushlinkError) else str(err)
            code = getattr(err, "code", "error")
            self._finish(job, scene, Outcome("ERROR", f"{label} failed ({code}): {text}"))

    def _finish(self, job: _Job, scene: bpy.types.Scene | None, outcome: Outcome) -> None:
        job.outcome = outcome
        self._jobs.pop(job.request.job_id, None)
        if scene is not None:
            _set_status(scene, outcome.message, 1.0 if outcome.level == "INFO" else 0.0, False)
        if not job.blocking:
            job.report(outcome)


def _close_client(client: BlockingClient, cancel_job: str | None) -> None:
    """Background thread: best-effort cancel on the server, then close the connection."""
    if cancel_job is not None:
        with contextlib.suppress(BrushlinkError):
            client.cancel(cancel_job)
    client.close()


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
