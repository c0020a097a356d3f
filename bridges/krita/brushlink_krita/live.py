"""Live painting: every change of the canvas regenerates the selection (or the canvas) with
img2img into a preview layer, a moment after the last stroke.

**Seeing a change.** Krita 5.1's scripting API has no signal for "the image changed" (its
``Notifier`` reports documents and views, not strokes), and ``Document.modified()`` stays true
after the first change. So a timer polls, cheaply: the layer stack (each layer's id,
visibility and opacity) and the pixels of the active layer — the one being painted on —
inside the live box (every visible layer when there is no active one: a script's document
without a view). Reading one layer's box is a memory copy (about 9 ms for 1024²); the poll
runs every 100 ms, or less often when that read is slower, so it never takes more than a fifth
of the main thread. The projection is not polled: the preview layer covers it, so a stroke
beneath an opaque preview would not show there.

**Jobs.** ``DEBOUNCE_MS`` after the last change seen, a ``style`` job (the prompt, the chosen
strength, a seed fixed for the session so the picture does not flicker between strokes, and
``LIVE_STEPS`` sampling steps unless the artist set some) is sent
with the preview layer hidden from the picture. A change while a job is out cancels it at once:
its picture is stale, and there is never more than one live job in flight. A result writes
its pixels into the preview layer (no undo step); ``apply`` keeps the current picture as a
layer of its own (one undo step, kept in the history).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

from krita import Krita
from PyQt5.QtCore import QCoreApplication, QTimer

from . import history, layers, runner
from .core import errors, host, protocol
from .options import KritaJob
from .selection import Box, Placement, build_job

log = logging.getLogger("brushlink.krita")

PREVIEW = "[brushlink] live preview"
_sessions: list[LiveSession] = []  # running ones, stopped when Krita closes
DEBOUNCE_MS = 300
POLL_MS = 100
LIVE_STEPS = 8  # a quick draw: live painting wants the picture now, not the best one


class LiveSession:
    def __init__(
        self,
        document,
        options: Callable[[], KritaJob],
        connection: Callable[[], host.HostRunner],
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        """``options()`` gives the current settings (the docker's fields) at each job;
        ``connection()`` the runner to send them with; ``on_state`` hears what happens."""
        self.document = document
        self._options = options
        self._connection = connection
        self._on_state = on_state or (lambda text: None)
        self.preview = None
        self.running: host.RunningJob | None = None
        self.box: Box | None = None
        self.seed: int | None = None
        self.label = ""
        self.active = False
        self.stats = {"issued": 0, "cancelled": 0, "shown": 0, "failed": 0, "max_in_flight": 0}
        self.last_change = 0.0  # when the poll last saw the canvas change
        self.fired_at = 0.0
        self.latency_s: float | None = None  # last change seen -> preview layer updated
        self.job_s: float | None = None  # job sent -> preview layer updated
        self._seen: tuple | None = None
        self._in_flight = 0
        app = QCoreApplication.instance()
        self._poll = QTimer(app)
        self._poll.timeout.connect(self._guarded(self.poll))
        self._debounce = QTimer(app)
        self._debounce.setSingleShot(True)
        self._debounce.timeout.connect(self._guarded(self.fire))

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Add the preview layer, send the first job, and watch the canvas."""
        if self.active:
            return
        self.active = True
        job = self._options()
        self.seed = job.request.seed if job.request.seed is not None else random.getrandbits(32)
        self.preview = self.document.createNode(PREVIEW, "paintlayer")
        layers.add_node(self.document, self.preview, None)  # on top: it shows the picture
        self._seen = self._fingerprint()
        self._poll.start(POLL_MS)
        runner.MAIN.hold()  # deliver results while the session lasts
        _sessions.append(self)
        self.fire()

    def stop(self) -> None:
        """Cancel the job in flight and remove the preview layer."""
        if not self.active:
            return
        self.active = False
        if self in _sessions:
            _sessions.remove(self)
        self._poll.stop()
        self._debounce.stop()
        self._cancel()
        runner.MAIN.release()
        preview, self.preview = self.preview, None
        try:
            if preview is not None and preview.parentNode() is not None:
                preview.remove()
                self.document.refreshProjection()
        except RuntimeError:  # the document is gone
            pass
        self._on_state("Live painting stopped")

    def _guarded(self, call: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                call()
            except Exception as exc:  # never a traceback dialog from a timer
                log.exception("brushlink: live painting failed")
                self._on_state(f"Live: {runner.as_brushlink_error(exc).message}")

        return run

    # ------------------------------------------------------------------ watching

    def _fingerprint(self) -> tuple:
        doc = self.document
        stack = tuple(
            (str(n.uniqueId()), n.visible(), n.opacity())
            for n in doc.topLevelNodes()
            if n.name() != PREVIEW
        )
        if self.box is None:
            return (stack,)
        node = doc.activeNode()
        if node is not None and node.name() != PREVIEW and node.parentNode() is not None:
            watched = [node]
        else:
            watched = [n for n in doc.topLevelNodes() if n.name() != PREVIEW and n.visible()]
        b = self.box
        pixels = tuple(bytes(n.pixelData(b.x, b.y, b.width, b.height)) for n in watched)
        return (stack, tuple(str(n.uniqueId()) for n in watched), pixels)

    def poll(self) -> None:
        if self.document not in Krita.instance().documents():
            self.stop()  # the document was closed
            return
        started = time.perf_counter()
        seen = self._fingerprint()
        cost_ms = (time.perf_counter() - started) * 1000
        self._poll.setInterval(max(POLL_MS, int(5 * cost_ms)))
        if seen == self._seen:
            return
        self._seen = seen
        self.changed()

    def changed(self) -> None:
        """The canvas changed: the job in flight is stale; send a new one after a pause."""
        self.last_change = time.perf_counter()
        if self.running is not None:
            self._cancel()
            self._on_state("Live: waiting for the stroke to end")
        self._debounce.start(DEBOUNCE_MS)

    # ------------------------------------------------------------------ jobs

    def _cancel(self) -> None:
        running, self.running = self.running, None
        if running is not None:
            running.cancel()  # on_done hears JobWasCancelled; the server stops it
            self.stats["cancelled"] += 1
            self._in_flight -= 1

    def fire(self) -> None:
        if not self.active:
            return
        self._cancel()
        job = self._options()
        job = replace(job, exclude=[*job.exclude, PREVIEW])
        job.request.kind = "style"
        job.request.seed = self.seed
        job.request.candidates, job.request.keep = 1, None
        if job.request.steps is None:
            job.request.steps = LIVE_STEPS
        self.label = job.label()
        sent, placement = build_job(self.document, job)
        if self.box is not None and self.box != placement.box:
            self._clear(self.box)
        self.box = placement.box
        self._seen = self._fingerprint()
        self.fired_at = time.perf_counter()
        self.last_change = self.last_change or self.fired_at
        self._in_flight += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self._in_flight)
        self.stats["issued"] += 1
        running: host.RunningJob | None = None

        def done(result: protocol.Result | None, error: errors.BrushlinkError | None) -> None:
            if running is not self.running:
                return  # cancelled as stale (or the session stopped): already counted
            self.running = None
            self._in_flight -= 1
            self._guarded(lambda: self._show(placement, result, error))()

        running = self._connection().start(sent, done)
        self.running = running
        self._on_state("Live: drawing…")

    def _show(self, placement: Placement, result, error) -> None:
        if not self.active or self.preview is None:
            return
        if error is not None or result is None:
            self.stats["failed"] += 1
            message = (error or errors.InternalError()).message
            self._on_state(f"Live: {message}")
            return
        (bgra,) = layers.result_pixels(placement, result.images[:1])
        box = placement.box
        self.preview.setPixelData(bgra, box.x, box.y, box.width, box.height)
        self.document.refreshProjection()
        self.document.waitForDone()
        now = time.perf_counter()
        self.latency_s, self.job_s = now - self.last_change, now - self.fired_at
        self.last_change = 0.0
        self.stats["shown"] += 1
        self._on_state(f"Live: updated in {self.job_s * 1000:.0f} ms")

    def _clear(self, box: Box) -> None:
        if self.preview is not None:
            blank = bytes(4 * box.width * box.height)
            self.preview.setPixelData(blank, box.x, box.y, box.width, box.height)

    # ------------------------------------------------------------------ keeping it

    def apply(self, above=None):
        """Keep the current preview as a layer of its own (one undo step, in the history)."""
        if self.preview is None or self.box is None or not self.stats["shown"]:
            raise errors.InvalidField("Live painting has no picture to apply yet.", field="live")
        b = self.box
        bgra = bytes(self.preview.pixelData(b.x, b.y, b.width, b.height))
        node = layers.paint_layer(self.document, layers.layer_name(self.label, self.seed), b, bgra)
        layers.add_node(self.document, node, above)
        job = self._options()
        job.request.kind = "style"
        history.record(self.document, job, job.request.model or "", b, self.seed, bgra)
        return node


def stop_all() -> None:
    """Stop every live session (Krita is closing)."""
    for session in list(_sessions):
        session.stop()
