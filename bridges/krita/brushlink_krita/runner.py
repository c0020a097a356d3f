"""Jobs off Krita's main thread.

The client core's ``BlockingClient`` runs asyncio on its own thread; each job gets a short-lived
worker thread that connects (if needed) and waits on the job, pushing every event into a
``queue.Queue``. A 20 ms ``QTimer`` on the main thread drains that queue, so callbacks that
touch Krita's API always run on the main thread and the UI never waits on the network.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PyQt5.QtCore import QCoreApplication, QTimer

from .core import blocking, errors, protocol, request

POLL_MS = 20
log = logging.getLogger("brushlink.krita")


class Connection:
    """One client per (url, token); connects on first use, from a worker thread."""

    _open: dict[tuple[str, str | None], Connection] = {}
    _open_lock = threading.Lock()

    def __init__(self, url: str, token: str | None) -> None:
        self.url = url
        self.token = token
        self.client = blocking.BlockingClient(url, token, open_timeout=5.0)
        self._lock = threading.Lock()
        self._connected = False

    @classmethod
    def get(cls, url: str, token: str | None) -> Connection:
        with cls._open_lock:
            conn = cls._open.get((url, token))
            if conn is None:
                conn = cls._open[(url, token)] = cls(url, token)
            return conn

    @classmethod
    def close_all(cls) -> None:
        with cls._open_lock:
            conns, cls._open = list(cls._open.values()), {}
        for conn in conns:
            conn.client.close()

    def close(self) -> None:
        """Forget this connection (the next ``get`` opens a new one) and close it."""
        with Connection._open_lock:
            if Connection._open.get((self.url, self.token)) is self:
                del Connection._open[(self.url, self.token)]
        self.client.close()

    @property
    def welcome(self) -> protocol.Welcome | None:
        return self.client.welcome

    def ensure_connected(self) -> protocol.Welcome:
        """Blocks: call from a worker thread. Raises ServerUnavailable / Unauthorized."""
        with self._lock:
            if not self._connected:
                self.client.connect()
                self._connected = True
            welcome = self.client.welcome
            assert welcome is not None
            return welcome


@dataclass
class _Done:
    value: Any = None
    error: BaseException | None = None


class Background:
    """Run ``work`` on a thread; ``on_event`` / ``on_done`` are called on the main thread."""

    def __init__(
        self,
        work: Callable[[Callable[[Any], None]], Any],
        on_done: Callable[[Any, BaseException | None], None],
        on_event: Callable[[Any], None] | None = None,
    ) -> None:
        self._work = work
        self._on_done = on_done
        self._on_event = on_event
        self._queue: queue.Queue[Any] = queue.Queue()
        # Parented to the application so Qt, not Python's garbage collector, frees it: a QTimer
        # collected after Qt's teardown (at interpreter exit) crashes Krita.
        self._timer = QTimer(QCoreApplication.instance())
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self._poll)
        self.finished = False

    def start(self) -> Background:
        threading.Thread(target=self._run, name="brushlink-job", daemon=True).start()
        self._timer.start()
        return self

    def _run(self) -> None:
        try:
            self._queue.put(_Done(value=self._work(self._queue.put)))
        except BaseException as exc:  # handed to the main thread, which reports it
            self._queue.put(_Done(error=exc))

    def _poll(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, _Done):
                self._timer.stop()
                self._timer.timeout.disconnect()
                self._timer.deleteLater()
                self.finished = True
                on_done = self._on_done
                # Drop the callbacks: they hold Krita documents and nodes, and a cycle that
                # lives until interpreter exit would free them after Krita is gone.
                self._work = self._on_done = self._on_event = None
                _guarded(on_done, item.value, item.error)
                return
            if self._on_event is not None:
                _guarded(self._on_event, item)


def _guarded(callback: Callable[..., None], *args: Any) -> None:
    """Run a callback from a Qt timer. Krita turns an exception escaping a Qt callback into
    a traceback dialog; here it is logged instead (e.g. the docker was closed meanwhile)."""
    try:
        callback(*args)
    except Exception:
        log.exception("brushlink: a callback failed")


class RemoteJob:
    """One job on the server: events and the final result arrive on the main thread."""

    def __init__(
        self,
        connection: Connection,
        job: request.JobRequest,
        on_done: Callable[[protocol.Result | None, BaseException | None], None],
        on_event: Callable[[protocol.Message], None] | None = None,
    ) -> None:
        self.connection = connection
        self.request = job
        self.cancelled = False
        self.abandoned = False
        self._on_done = on_done
        self._background = Background(self._work, self._finish, on_event)

    @property
    def job_id(self) -> str:
        return self.request.job_id

    @property
    def finished(self) -> bool:
        return self._background.finished

    def start(self) -> RemoteJob:
        self._background.start()
        return self

    def _work(self, emit: Callable[[Any], None]) -> protocol.Result:
        self.connection.ensure_connected()
        if self.cancelled:
            raise errors.JobWasCancelled()
        return self.connection.client.run(self.request, on_event=emit)

    def _finish(self, result: protocol.Result | None, error: BaseException | None) -> None:
        on_done, self._on_done = self._on_done, None
        if not self.abandoned and on_done is not None:
            on_done(result, error)

    def abandon(self) -> None:
        """Stop caring about this job: cancel it, and drop whatever it still sends back (no
        layer appears after the caller has been told the job failed)."""
        self.abandoned = True
        self.cancel()

    def cancel(self) -> None:
        """Ask the server to stop; the job then ends with JobWasCancelled."""
        if self.cancelled or self.finished:
            return
        self.cancelled = True

        def send() -> None:
            # Not connected yet: the worker sees `cancelled` before submitting.
            with contextlib.suppress(errors.BrushlinkError):
                self.connection.client.cancel(self.job_id)

        threading.Thread(target=send, name="brushlink-cancel", daemon=True).start()


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
