"""The engine host that runs inside a Ray actor, one per GPU (or CPU slot) of the cluster.

It holds its own engines (``build_registry(config, device)``) and runs them on one dedicated
thread, as a local worker does. The actor is threaded (``max_concurrency`` > 1) so that while
``run`` streams a job's events, ``cancel`` and ``info`` are still answered:

* ``run`` is a streaming generator (``num_returns="streaming"``): it fetches the job from the
  object store (the front put it there once), yields ``begun``, then ``progress`` and
  ``preview`` events as the engine reports them, then one final ``result`` (images encoded for
  the job's link), ``failed`` or ``cancelled``. The front consumes them as they come. (Ray
  Client cannot stream: through it, ``start`` and ``events`` carry the same events in batches.)
* ``cancel(job_id)`` sets the job's flag; the engine sees it at its next step.

Events are tuples (small, picklable), streamed in lists (``_batched``: those reported within
20 ms of each other go together): ``("begun", wall time, fetch s)``, ``("progress", step,
total, wall time)``, ``("preview", step, total, frame, wall time)``, ``("result", Outcome,
models warm, wall time)``, ``("failed", error wire)``, ``("cancelled",)``. Wall times let the
front measure dispatch and relay delays (meaningful on one machine, or clocks kept in step).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields, replace
from typing import Any

import numpy as np

from brushlink.plugin.errors import BrushlinkError, InternalError

from ..config import ServerConfig
from ..engines.base import EngineJob, JobCancelled, JobContext
from .base import Outcome, WarmBook, execute, preview_frame

log = logging.getLogger("brushlink.worker")

_DONE = object()
COALESCE_S = 0.02  # events reported this close together travel as one streamed item


def writable(job: EngineJob) -> EngineJob:
    """Arrays read from the object store are read-only views of shared memory; engines get
    their own copies, as they would in the server's process."""

    def own(value: Any) -> Any:
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            return value.copy()
        if isinstance(value, list):
            return [own(v) for v in value]
        if isinstance(value, dict):
            return {k: own(v) for k, v in value.items()}
        return value

    return replace(job, **{f.name: own(getattr(job, f.name)) for f in fields(job)})


def _batched(events: queue.Queue[Any]) -> Iterator[list[tuple[Any, ...]]]:
    """The engine's events until it is done, in batches: the events reported within
    ``COALESCE_S`` of the first go together. Every step still gets its event; a fast engine
    (a step every few milliseconds) just costs the server one streamed item per batch, not
    one per step, and an event waits at most ``COALESCE_S``."""
    batch: list[tuple[Any, ...]] = []
    due = 0.0
    while True:
        try:
            item = events.get(timeout=max(0.0, due - time.monotonic()) if batch else None)
        except queue.Empty:
            yield batch
            batch = []
            continue
        if item is _DONE:
            break
        if not batch:
            due = time.monotonic() + COALESCE_S
        batch.append(item)
    if batch:
        yield batch


class EngineHost:
    """The body of a Ray worker (``ray.remote`` is applied by ``ray_pool``)."""

    def __init__(self, config: ServerConfig, device: str, name: str, threads: int) -> None:
        import ray
        import torch

        from ..engines.catalog import build_registry

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        torch.set_num_threads(max(1, threads))
        self.name, self.device, self.threads = name, device, threads
        self.registry = build_registry(config, device)
        self.registry.refresh()  # list the model folders now, not during the first job
        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.node = f"{ray.util.get_node_ip_address()}/{self.node_id[:8]}"
        self._warm = WarmBook()
        self._flags: dict[str, threading.Event] = {}
        self._cancelled_early: deque[str] = deque(maxlen=1024)  # before their run began
        self._lock = threading.Lock()
        self._boxes: dict[str, queue.Queue[tuple[Any, ...]]] = {}  # Ray Client's jobs
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": self.device,
            "node": self.node,
            "node_id": self.node_id,
            "pid": os.getpid(),
            "threads": self.threads,
            "models_warm": self._warm.warm(self.registry.engines()),
        }

    def cancel(self, job_id: str) -> None:
        with self._lock:
            flag = self._flags.get(job_id)
            if flag is None:
                self._cancelled_early.append(job_id)
            else:
                flag.set()

    # Ray Client cannot stream a method's results: ``start`` runs the same generator into a
    # mailbox, and ``events`` hands over what arrived (waiting up to ``wait_s`` for something).

    def start(self, job_refs: list[Any], engine_name: str, encoding: str, job_id: str) -> None:
        box: queue.Queue[tuple[Any, ...]] = queue.Queue()
        with self._lock:
            self._boxes[job_id] = box

        def drain() -> None:
            try:
                for batch in self.run(job_refs, engine_name, encoding):
                    for item in batch:
                        box.put(item)
            except Exception as exc:  # the job's inputs could not be fetched, say
                log.exception("job %s failed before it ran", job_id)
                box.put(("failed", InternalError(f"The worker could not run it: {exc}").to_wire()))

        threading.Thread(target=drain, name=f"job-{job_id[:8]}", daemon=True).start()

    def events(self, job_id: str, wait_s: float) -> list[tuple[Any, ...]]:
        with self._lock:
            box = self._boxes[job_id]
        items = []
        try:
            items.append(box.get(timeout=wait_s))
            while True:
                items.append(box.get_nowait())
        except queue.Empty:
            pass
        if any(item[0] in ("result", "failed", "cancelled") for item in items):
            with self._lock:
                self._boxes.pop(job_id, None)
        return items

    def run(
        self, job_refs: list[Any], engine_name: str, encoding: str
    ) -> Iterator[list[tuple[Any, ...]]]:
        import ray

        begun = time.time()
        fetch = time.perf_counter()
        job = writable(ray.get(job_refs[0]))  # a nested ref: fetched here, and timed
        fetch_s = time.perf_counter() - fetch
        flag = threading.Event()
        with self._lock:
            if job.job_id in self._cancelled_early:
                flag.set()
            self._flags[job.job_id] = flag
        yield [("begun", begun, fetch_s)]
        try:
            yield from self._run(job, engine_name, encoding, flag)
        finally:
            with self._lock:
                self._flags.pop(job.job_id, None)

    def _run(
        self, job: EngineJob, engine_name: str, encoding: str, flag: threading.Event
    ) -> Iterator[list[tuple[Any, ...]]]:
        events: queue.Queue[Any] = queue.Queue()

        def on_progress(step: int, total: int) -> None:
            events.put(("progress", step, total, time.time()))

        def on_preview(image: np.ndarray, step: int, total: int) -> None:
            events.put(("preview", step, total, preview_frame(job.job_id, image), time.time()))

        ctx = JobContext(
            device=self.device,
            on_progress=on_progress,
            on_preview=on_preview,
            is_cancelled=flag.is_set,
        )
        engine = self.registry.engine(engine_name)
        future: Future[Outcome] = self._executor.submit(execute, engine, job, ctx, encoding)
        future.add_done_callback(lambda _: events.put(_DONE))
        yield from _batched(events)
        self._warm.ran(engine_name, job.model.name)
        try:
            outcome = future.result()
        except JobCancelled:
            yield [("cancelled",)]
        except BrushlinkError as err:
            yield [("failed", err.to_wire())]
        except Exception:
            log.exception("engine %s failed on job %s", engine_name, job.job_id)
            yield [("failed", InternalError().to_wire())]
        else:
            warm = self._warm.warm(self.registry.engines())
            yield [("result", outcome, warm, time.time())]
