"""Jobs off Blender's main thread, results back on it.

``bpy`` may only be touched from the main thread, so a job runs on a worker thread through the
blocking client; every event it produces (preview, result, failure) goes into a queue that a
``bpy.app.timers`` callback drains on the main thread and hands to the job's placement (which
writes images and node graphs). In background mode (``blender -b``, bpy as a module) there is no
event loop to drive timers, so ``start`` blocks until the job is over and drains the queue itself:
scripts and tests get the finished result when the operator returns.
"""

from __future__ import annotations

import queue
import threading
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
        self._client: BlockingClient | None = None
        self._client_key: tuple[str, str | None] | None = None
        self._lock = threading.Lock()
        # None: block only in background mode. True/False force it (a script in the UI that
        # wants the result before it goes on sets True).
        self.block: bool | None = None
        # bpy.app.timers matches callbacks by identity: keep one bound method for (un)register.
        self._timer = self._tick

    # ------------------------------------------------------------------ client

    def client(self, url: str, token: str | None) -> BlockingClient:
        """One connected client per (url, token): changing either in the preferences reconnects.

        Worker threads only: connecting may take up to the open timeout.
        """
        with self._lock:
            if self._client is None or self._client_key != (url, token):
                if self._client is not None:
                    self._client.close()
                    self._client = None
                client = BlockingClient(url, token, open_timeout=5.0)
                try:
                    client.connect()  # raises ServerUnavailable / Unauthorized for the report
                except BaseException:
                    client.close()
                    raise
                self._client, self._client_key = client, (url, token)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None
            self._client_key = None
        if bpy.app.timers.is_registered(self._timer):
            bpy.app.timers.unregister(self._timer)

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
        threading.Thread(
            target=self._run, args=(request, server), name="brushlink-job", daemon=True
        ).start()
        if not bpy.app.timers.is_registered(self._timer):
            bpy.app.timers.register(self._timer, first_interval=POLL_SECONDS, persistent=True)
        return None

    def running(self) -> list[str]:
        return list(self._jobs)

    def cancel(self, job_id: str | None = None) -> int:
        """Ask the server to stop a job (all of them when ``job_id`` is None)."""
        ids = [job_id] if job_id else list(self._jobs)
        server = (preferences.server_url(), preferences.server_token())
        for one in ids:
            threading.Thread(target=self._cancel, args=(one, server), daemon=True).start()
        return len(ids)

    def _cancel(self, job_id: str, server: tuple[str, str | None]) -> None:
        try:
            self.client(*server).cancel(job_id)
        except BrushlinkError as err:
            self._events.put(("error", job_id, err))

    def _run(self, request: JobRequest, server: tuple[str, str | None]) -> None:
        """Worker thread: never touches bpy, only the queue."""
        job_id = request.job_id

        def on_event(event: Message) -> None:
            if isinstance(event, Progress):
                self._events.put(("progress", job_id, (event.step, event.total)))
            elif isinstance(event, Preview) and event.image:
                self._events.put(("preview", job_id, event.image))

        try:
            result = self.client(*server).run(request, on_event)
        except JobWasCancelled:
            self._events.put(("cancelled", job_id, None))
        except BrushlinkError as err:
            self._events.put(("error", job_id, err))
        except Exception:  # a bug: keep it out of the artist's face, but in the console
            traceback.print_exc()
            self._events.put(("error", job_id, InternalError()))
        else:
            self._events.put(("result", job_id, result))

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
