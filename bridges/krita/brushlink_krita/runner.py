"""Krita's way back to its main thread, for the host job runner of the client core.

Jobs run through ``core.host.HostRunner`` (one per server URL and token): it does the network
work on its own threads and hands every event and ending to ``deliver``. Here that is a
``Mailbox`` drained by a 10 ms ``QTimer`` on Krita's main thread, so callbacks that touch
Krita's API always run there and the UI never waits on the network. The timer runs only while
something is out.

Images travel raw: the runner asks for ``bgra8`` results (Krita's own byte order, so a result
is written into a layer as it arrives) and sends the canvas as raw pixels wherever the server
takes them (a loopback link); a remote server gets and sends PNG.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PyQt5.QtCore import QCoreApplication, QTimer

from .core import errors, host

POLL_MS = 10
ENCODINGS = ("bgra8", "png")  # how results may come, fastest first
log = logging.getLogger("brushlink.krita")


class MainThread:
    """Calls from worker threads, run on Krita's main thread by a timer."""

    def __init__(self) -> None:
        self.mailbox = host.Mailbox()
        self._timer: QTimer | None = None
        self._busy = 0
        self._lock = threading.Lock()

    def deliver(self, call: Callable[[], None]) -> None:
        self.mailbox.put(call)

    def hold(self) -> None:
        """Something is out (a job, a connection attempt): keep draining until ``release``.
        Main thread only."""
        self._busy += 1
        if self._timer is None:
            # Parented to the application so Qt, not Python's garbage collector, frees it: a
            # QTimer collected after Qt's teardown (at interpreter exit) crashes Krita.
            self._timer = QTimer(QCoreApplication.instance())
            self._timer.setInterval(POLL_MS)
            self._timer.timeout.connect(self._drain)
        if not self._timer.isActive():
            self._timer.start()

    def release(self) -> None:
        self._busy = max(0, self._busy - 1)

    def _drain(self) -> None:
        self.mailbox.drain()
        if self._busy == 0 and self._timer is not None:
            self._timer.stop()


MAIN = MainThread()
_runners: dict[tuple[str, str | None], host.HostRunner] = {}


def runner(url: str, token: str | None) -> host.HostRunner:
    """The shared runner for ``url``/``token`` (its connection opens on the first job)."""
    key = (url, token)
    if key not in _runners:
        _runners[key] = host.HostRunner(
            url, token, deliver=MAIN.deliver, open_timeout=5.0, encodings=ENCODINGS
        )
    return _runners[key]


def forget(url: str, token: str | None) -> None:
    """Close the runner for ``url``/``token``; the next ``runner`` opens a fresh connection."""
    old = _runners.pop((url, token), None)
    if old is not None:
        old.close(wait=0)


def close_all() -> None:
    for key in list(_runners):
        forget(*key)


def in_background(
    work: Callable[[], Any], on_done: Callable[[Any, errors.BrushlinkError | None], None]
) -> None:
    """Run blocking ``work`` (connecting, say) on a thread; ``on_done(value, error)`` runs on
    the main thread."""
    MAIN.hold()

    def finish(value: Any, error: errors.BrushlinkError | None) -> None:
        MAIN.release()
        on_done(value, error)

    def run() -> None:
        try:
            value = work()
        except BaseException as exc:  # handed to the main thread, which reports it
            error = as_brushlink_error(exc)
            MAIN.deliver(lambda: finish(None, error))
        else:
            MAIN.deliver(lambda: finish(value, None))

    threading.Thread(target=run, name="brushlink-connect", daemon=True).start()


def as_brushlink_error(exc: BaseException) -> errors.BrushlinkError:
    """Every failure the artist sees is a BrushlinkError with a readable sentence.

    Always a fresh exception: the original may still be held by the client's thread, and
    once raised here its traceback would keep Krita documents alive past Krita's exit.
    """
    if isinstance(exc, errors.BrushlinkError):
        return errors.BrushlinkError.from_wire(exc.to_wire())
    if isinstance(exc, ImportError):
        return errors.InternalError(
            f"The plugin could not load part of itself ({exc}); reinstall the brushlink bundle."
        )
    return errors.InternalError(f"Unexpected problem: {exc.__class__.__name__}: {exc}")
