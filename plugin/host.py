"""One job runner for every host: Krita, Blender and the hot folder run their jobs through it.

A host gives two things: how to get back to its main thread (``deliver``: Krita drains a
``Mailbox`` from a Qt timer, Blender from ``bpy.app.timers``, the hot folder calls at once) and
what to do with a result (its own placement code, in ``on_done``). Everything else is here and
the same for all of them:

* one connection per runner, opened on first use and shared by its jobs; when it is lost the
  client reconnects and submits unfinished jobs again (their ids make that safe);
* a server that cannot be reached fails a job at once, or, with ``retry_for``, is waited for
  with backoff (the hot folder keeps its inputs waiting rather than failing them);
* ``start`` runs a job on a worker thread and reports its events and its end through
  ``deliver``; ``cancel`` ends the job for the host at once (exactly one ``on_done``) and tells
  the server in the background, which may be gone;
* ``run`` is the blocking form, for scripts, background Blender and the hot folder's workers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .blocking import BlockingClient
from .errors import (
    BrushlinkError,
    InternalError,
    JobWasCancelled,
    QueueFull,
    ServerUnavailable,
    Unauthorized,
)
from .home import default_url, read_token
from .protocol import Message, Result, Welcome
from .request import Job

log = logging.getLogger("brushlink.host")

Deliver = Callable[[Callable[[], None]], None]
DoneCallback = Callable[[Result | None, BrushlinkError | None], None]
EventCallback = Callable[[Message], None]


class Stopped(ServerUnavailable):
    """The runner was closed while a job waited for the server."""


class Mailbox:
    """Calls handed from worker threads to the host's main thread, which runs ``drain``."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()

    def put(self, call: Callable[[], None]) -> None:
        self._queue.put(call)

    def drain(self) -> int:
        """Run every waiting call (a failing one is logged, never raised into the host)."""
        count = 0
        while True:
            try:
                call = self._queue.get_nowait()
            except queue.Empty:
                return count
            count += 1
            try:
                call()
            except Exception:
                log.exception("brushlink: a callback failed")


class RunningJob:
    """A job started with ``HostRunner.start``: it ends exactly once, through ``on_done``."""

    def __init__(
        self, runner: HostRunner, job: Job, on_done: DoneCallback, on_event: EventCallback | None
    ) -> None:
        self.runner = runner
        self.job = job
        self.finished = False
        self.cancelled = False
        self._on_done: DoneCallback | None = on_done
        self._on_event = on_event
        self._lock = threading.Lock()

    @property
    def job_id(self) -> str:
        return self.job.job_id

    def _work(self) -> None:
        try:
            result = self.runner.run(self.job, on_event=self._event)
        except BrushlinkError as err:
            self._end(None, err)
        except Exception as exc:  # a bug: reported as one, never lost
            log.exception("brushlink: a job failed unexpectedly")
            self._end(None, InternalError(f"Unexpected problem: {exc.__class__.__name__}: {exc}"))
        else:
            self._end(result, None)

    def _event(self, event: Message) -> None:
        on_event = self._on_event
        if on_event is not None and not self.finished:
            self.runner.deliver(lambda: self._deliver_event(on_event, event))

    def _deliver_event(self, on_event: EventCallback, event: Message) -> None:
        if not self.finished:
            on_event(event)

    def _end(self, result: Result | None, error: BrushlinkError | None) -> None:
        with self._lock:
            on_done, self._on_done = self._on_done, None
        if on_done is None:
            return  # already ended (cancelled, or abandoned by the host)

        def finish() -> None:
            self.finished = True
            self._on_event = None
            on_done(result, error)

        self.runner.deliver(finish)

    def cancel(self) -> None:
        """End the job for the host now (``on_done`` gets ``JobWasCancelled``) and ask the
        server to stop it; the server's own answer, if any, is dropped."""
        if self.cancelled:
            return
        self.cancelled = True
        self._end(None, JobWasCancelled())
        self.runner.cancel_remote(self.job_id)

    def abandon(self) -> None:
        """Stop caring: cancel on the server, and never call ``on_done``."""
        with self._lock:
            self._on_done = None
        self.finished = True
        self.cancelled = True
        self.runner.cancel_remote(self.job_id)


class HostRunner:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        home: Path | None = None,
        deliver: Deliver | None = None,
        open_timeout: float = 10.0,
        retry_for: float | None = 0.0,
        max_backoff: float = 5.0,
        on_wait: Callable[[str], None] | None = None,
        encodings: tuple[str, ...] = ("png",),
    ) -> None:
        """``retry_for``: how long a job waits for an unreachable server (0: fail at once,
        None: until the runner is closed). ``on_wait`` hears what it is waiting for."""
        self.url = url or default_url(home)
        self.token = token  # None: read from the home folder at each connection
        self._home = home
        self.deliver: Deliver = deliver or (lambda call: call())
        self.open_timeout = open_timeout
        self.retry_for = retry_for
        self.max_backoff = max_backoff
        self._on_wait = on_wait
        self.encodings = encodings  # how this host reads result images, fastest first
        self._client: BlockingClient | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ connection

    def client(self) -> BlockingClient:
        """The shared client, connecting when there is none (blocks; raises
        ``ServerUnavailable`` or ``Unauthorized``)."""
        if self._stopped.is_set():
            raise Stopped("The connection to the server was closed.")
        with self._lock:
            if self._client is None:
                token = self.token if self.token is not None else read_token(self._home)
                client = BlockingClient(
                    self.url, token, open_timeout=self.open_timeout, encodings=self.encodings
                )
                try:
                    client.connect()
                except BaseException:
                    client.close()
                    raise
                self._client = client
            return self._client

    def welcome(self) -> Welcome:
        client: BlockingClient = self._waiting(self.client, "for the server")
        welcome = client.welcome
        assert welcome is not None  # a connected client has been greeted
        return welcome

    def _drop(self, client: BlockingClient) -> None:
        with self._lock:
            if self._client is client:
                self._client = None
        client.close()

    def _waiting(self, action: Callable[[], Any], what: str) -> Any:
        """``action()``, retried with backoff while the server is unreachable (``retry_for``)."""
        delay, first = 0.5, None
        while True:
            try:
                return action()
            except Stopped:
                raise
            except (ServerUnavailable, Unauthorized, QueueFull) as exc:
                now = time.monotonic()
                first = first or now
                if self.retry_for is not None and now - first >= self.retry_for:
                    raise
                if self._on_wait is not None:
                    self._on_wait(f"waiting  {what}: {exc.message} Retrying in {delay:.1f} s.")
                if self._stopped.wait(delay):
                    raise Stopped("The connection to the server was closed.") from exc
                delay = min(delay * 2, self.max_backoff)

    # ------------------------------------------------------------------ jobs

    def run(
        self, job: Job, on_event: EventCallback | None = None, timeout: float | None = None
    ) -> Result:
        """Run one job to its end (blocking); raises its error, ``JobWasCancelled`` or
        ``ServerUnavailable``."""

        def attempt() -> Result:
            client = self.client()
            try:
                return client.run(job, on_event, timeout)
            except (ServerUnavailable, Unauthorized):
                if self._stopped.is_set():
                    raise Stopped("The connection to the server was closed.") from None
                self._drop(client)  # reconnect (and read the token again) next time
                raise

        result: Result = self._waiting(attempt, f"to run job {job.job_id[:8]}")
        return result

    def start(
        self, job: Job, on_done: DoneCallback, on_event: EventCallback | None = None
    ) -> RunningJob:
        """Run ``job`` on a worker thread; ``on_event`` and ``on_done`` arrive via ``deliver``."""
        running = RunningJob(self, job, on_done, on_event)
        thread = threading.Thread(target=running._work, name="brushlink-job", daemon=True)
        self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        return running

    def cancel_remote(self, job_id: str) -> None:
        """Ask the server to stop a job, in the background (it may be gone: then nothing)."""

        def send() -> None:
            with self._lock:
                client = self._client
            if client is not None:
                with contextlib.suppress(BrushlinkError):
                    client.cancel(job_id)

        threading.Thread(target=send, name="brushlink-cancel", daemon=True).start()

    def stop_waiting(self) -> None:
        """Wake jobs waiting for the server (they end with ``Stopped``); running ones go on."""
        self._stopped.set()

    def close(self, wait: float = 5.0) -> None:
        """Close the connection; jobs still running end with ``ServerUnavailable``."""
        self._stopped.set()
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
        deadline = time.monotonic() + wait
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
