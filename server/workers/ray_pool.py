"""Ray workers: engines in Ray actors on any node of a cluster (``brushlink serve --ray ...``).

The front (transport, auth, validation, the job book, the queue) stays in this process, which
joins the cluster as a Ray driver. Workers are found from the cluster's resources: one actor
per GPU (``num_gpus=1``), or with ``ray_cpus_per_worker`` K (and on a cluster with no GPU, K=1)
one per K CPUs (``num_cpus=K``), each pinned to its node. The cluster is looked at again every
``ray_poll_s``: nodes that join get workers and start taking jobs; a worker that died is
replaced when its node still has room. ``workers`` > 0 caps how many are started.

A job's decoded request (numpy images included) is put in the object store once, however many
times it runs; the actor fetches it, streams its events back (``ray_actor.EngineHost.run``),
and its result images travel back through the object store. A worker's death (its process, or
its node) surfaces as a ``RayActorError`` from the stream: the job runs again elsewhere.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

import ray
from ray.exceptions import (
    NodeDiedError,
    ObjectLostError,
    RayActorError,
    RayTaskError,
    WorkerCrashedError,
)
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from brushlink.plugin.errors import BrushlinkError

from ..config import ServerConfig
from ..engines.base import JobCancelled
from ..jobs import JobRecord
from . import ClusterUnavailable
from .base import JobEvents, Outcome, Pool, Worker, WorkerLost
from .ray_actor import EngineHost

log = logging.getLogger("brushlink.ray")

NAMESPACE = "brushlink"  # actors are named, e.g. `ray-3fa2-1`: `ray.get_actor(name, NAMESPACE)`
START_TIMEOUT_S = 120.0  # how long the server waits for its first workers before listening
MAX_START_FAILURES = 3  # a node whose actors keep failing to start is left alone
CLIENT_ATTEMPTS = 3  # joins through Ray Client tried when its server fails to start
POLL_WAIT_S = 1.0  # Ray Client: how long one call for a job's events waits for some
LOST = (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError)


def lost_worker(exc: BaseException) -> bool:
    """Whether an error from a worker's stream means the worker (or its node) is gone."""
    if isinstance(exc, RayTaskError):
        return isinstance(getattr(exc, "cause", None), LOST)
    return isinstance(exc, LOST)


class RayWorker(Worker):
    def __init__(
        self, pool: RayPool, actor: Any, seq: int, name: str, device: str, node_id: str
    ) -> None:
        super().__init__()
        self.pool, self.actor, self.seq = pool, actor, seq
        self.name, self.device, self.node_id, self.node = name, device, node_id, node_id[:8]
        self.ready = False  # until its engines are built
        self.pid = 0
        self._warm: list[str] = []
        # set when the pool drops this worker (its node left): a node Ray calls dead may
        # still stream for a while, but its job runs again elsewhere, and only there
        self.gone = asyncio.Event()

    def warm(self) -> list[str]:
        return list(self._warm)

    async def run(self, record: JobRecord, events: JobEvents) -> Outcome:
        try:
            return await self._unless_gone(
                self._polled(record, events) if self.pool.client else self._streamed(record, events)
            )
        except (JobCancelled, BrushlinkError):
            raise
        except Exception as exc:
            if lost_worker(exc):
                raise WorkerLost(f"{type(exc).__name__}: {exc}") from exc
            raise

    async def _unless_gone(self, running: Coroutine[Any, Any, Outcome]) -> Outcome:
        job = asyncio.ensure_future(running)
        gone = asyncio.ensure_future(self.gone.wait())
        try:
            await asyncio.wait((job, gone), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            job.cancel()
            raise
        finally:
            gone.cancel()
        if not job.done():
            job.cancel()
            raise WorkerLost(f"worker {self.name}'s node left the cluster")
        return job.result()

    async def _streamed(self, record: JobRecord, events: JobEvents) -> Outcome:
        ref, put_s = self.pool.job_ref(record)
        relay = _Relay(self, events, put_s)
        stream = self.actor.run.options(num_returns="streaming").remote(
            [ref], record.engine.name, record.encoding
        )
        async for batch_ref in stream:
            fetch = time.perf_counter()
            for item in await fetched(batch_ref):
                outcome = relay.handle(item, fetch)
                if outcome is not None:
                    return outcome
        raise WorkerLost("the worker's stream ended without an answer")

    async def _polled(self, record: JobRecord, events: JobEvents) -> Outcome:
        """Ray Client cannot stream a method's results: the same events, fetched in batches
        (each call waits until the actor has some)."""
        ref, put_s = self.pool.job_ref(record)
        relay = _Relay(self, events, put_s)
        job_id = record.job_id
        await fetched(self.actor.start.remote([ref], record.engine.name, record.encoding, job_id))
        while True:
            fetch = time.perf_counter()
            for item in await fetched(self.actor.events.remote(job_id, POLL_WAIT_S)):
                outcome = relay.handle(item, fetch)
                if outcome is not None:
                    return outcome

    def cancel(self, record: JobRecord) -> None:
        self.actor.cancel.remote(record.job_id)  # not awaited: a dead actor's error is moot

    async def close(self) -> None:
        kill(self.actor)


class _Relay:
    """Turns a worker's events (``ray_actor``'s tuples) into the job's events, and its final
    one into an outcome (or the exception it stands for), timing the trip."""

    def __init__(self, worker: RayWorker, events: JobEvents, put_s: float) -> None:
        self.worker, self.events = worker, events
        self.sent = time.time()
        self.timings = {"transfer_s": put_s, "dispatch_s": 0.0}
        self.relays: list[float] = []

    def handle(self, item: tuple[Any, ...], fetch: float) -> Outcome | None:
        kind = item[0]
        if kind == "begun":
            self.timings["dispatch_s"] = max(0.0, item[1] - self.sent)
            self.timings["transfer_s"] += item[2]
        elif kind == "progress":
            self.relays.append(max(0.0, time.time() - item[3]))
            self.events.progress(item[1], item[2])
        elif kind == "preview":
            self.relays.append(max(0.0, time.time() - item[4]))
            self.events.preview(item[3], item[1], item[2])
        elif kind == "result":
            outcome: Outcome = item[1]
            self.worker._warm = list(item[2])
            self.timings["transfer_s"] += time.perf_counter() - fetch
            self.timings["relay_s"] = sum(self.relays) / len(self.relays) if self.relays else 0.0
            outcome.timings.update(self.timings)
            return outcome
        elif kind == "cancelled":
            raise JobCancelled()
        elif kind == "failed":
            raise BrushlinkError.from_wire(item[1])
        return None


async def fetched(ref: Any) -> Any:
    """An object's value, awaited (a Ray Client's refs as well as a driver's)."""
    return await asyncio.wrap_future(ref.future())


def available_per_node() -> dict[str, dict[str, float]] | None:
    """Each live node's free resources (Ray's developer API; None where it is missing)."""
    try:
        from ray._private.state import available_resources_per_node

        return dict(available_resources_per_node())
    except Exception:
        log.debug("no per-node free resources from this Ray", exc_info=True)
        return None


def kill(actor: Any) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception:  # already gone
        log.debug("killing an actor failed", exc_info=True)


def connect(address: str) -> None:
    """Join the cluster as a driver: ``local`` starts a Ray of this machine's own; ``auto``
    finds the one `ray start` runs here; ``host:port`` or ``ray://host:10001`` names one."""
    options: dict[str, Any] = {"namespace": NAMESPACE, "logging_level": logging.WARNING}
    for attempt in range(1, CLIENT_ATTEMPTS + 1):
        try:
            if address == "local":
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing leaves here
                ray.init(include_dashboard=False, **options)
            else:
                ray.init(address=address, **options)
            return
        except (ConnectionError, RuntimeError, ValueError) as exc:
            # Ray Client's proxy answered but its per-client server died while starting (a
            # race seen on a busy head): another try starts a new one
            if "Initialization failure from server" in str(exc) and attempt < CLIENT_ATTEMPTS:
                log.warning("the Ray Client server failed to start; trying again: %s", exc)
                ray.shutdown()  # whatever the failed try left connected
                time.sleep(1.0)
                continue
            raise ClusterUnavailable(f"cannot join the Ray cluster at `{address}`: {exc}") from exc


class RayPool(Pool):
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.client = bool(config.ray and config.ray.startswith("ray://"))  # Ray Client
        self.workers: list[Worker] = []
        self.starting: list[RayWorker] = []
        self.changed: Callable[[], None] = lambda: None
        self._tag = secrets.token_hex(2)  # tells this server's actors from another's
        self._seq = itertools.count(1)
        self._refs: dict[str, Any] = {}  # job id -> its request in the object store
        self._failures: dict[str, int] = {}  # node id -> actors that failed to start in a row
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._actor_class: Any = ray.remote(EngineHost)

    # ------------------------------------------------------------------ life

    async def start(self, changed: Callable[[], None]) -> None:
        self.changed = changed
        assert self.config.ray is not None
        connect(self.config.ray)
        await self.reconcile()
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.starting and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if not self.workers:
            log.warning("the Ray cluster has no room for a worker yet; jobs wait for a node")
        self._poller = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
        for worker in [*self.workers, *self.starting]:
            await worker.close()
        self._refs.clear()
        ray.shutdown()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.config.ray_poll_s)
            try:
                await self.reconcile()
            except Exception:
                log.exception("looking at the Ray cluster failed; trying again later")

    # ------------------------------------------------------------------ capacity

    async def reconcile(self) -> None:
        """Start workers on the room the cluster's nodes have free (what other Ray work or
        another brushlink front holds is left alone); forget the workers of nodes that left."""
        nodes = await asyncio.to_thread(ray.nodes)
        free = None if self.client else await asyncio.to_thread(available_per_node)
        alive = {n["NodeID"]: n for n in nodes if n.get("Alive")}
        for worker in [*self.workers, *self.starting]:
            if isinstance(worker, RayWorker) and worker.node_id not in alive:
                log.warning("node %s left the cluster: worker %s dropped", worker.node, worker.name)
                self._drop(worker)
        totals = {node_id: n.get("Resources", {}) for node_id, n in alive.items()}
        per_worker = self.config.ray_cpus_per_worker
        on_gpus = not per_worker and any(r.get("GPU", 0) >= 1 for r in totals.values())
        cap = self.config.workers
        for node_id, total in sorted(totals.items()):
            if self._failures.get(node_id, 0) >= MAX_START_FAILURES:
                continue
            ours = [w for w in self._all() if w.node_id == node_id]
            if free is None:  # Ray Client: only the totals, less what this pool holds
                room, new = total, len(ours)
            else:  # a starting worker may not hold its share yet: count it as holding it
                room, new = free.get(node_id, {}), sum(1 for w in ours if not w.ready)
            slots = (
                int(room.get("GPU", 0)) if on_gpus else int(room.get("CPU", 0) // (per_worker or 1))
            )
            cpus, gpus = total.get("CPU", 0.0), max(1, int(total.get("GPU", 0)))
            for _ in range(slots - new):
                if cap and len(self._all()) >= cap:
                    return
                threads = max(1, int(cpus // gpus)) if on_gpus else max(1, int(per_worker or 1))
                self._start(node_id, gpu=on_gpus, cpus=per_worker or 1, threads=threads)

    def _all(self) -> list[RayWorker]:
        return [w for w in [*self.workers, *self.starting] if isinstance(w, RayWorker)]

    def _start(self, node_id: str, *, gpu: bool, cpus: float, threads: int) -> None:
        seq = next(self._seq)
        name = f"ray-{self._tag}-{seq}"
        device = "cuda" if gpu else "cpu"
        actor = self._actor_class.options(
            name=name,
            namespace=NAMESPACE,
            max_concurrency=4,  # run's stream, cancel and info at once
            num_gpus=1 if gpu else 0,
            num_cpus=0 if gpu else cpus,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
        ).remote(self.config, device, name, threads)
        worker = RayWorker(self, actor, seq, name, device, node_id)
        self.starting.append(worker)
        log.info("starting worker %s (%s) on node %s", name, device, node_id[:8])
        self._spawn(self._when_ready(worker))

    async def _when_ready(self, worker: RayWorker) -> None:
        try:
            info = await fetched(worker.actor.info.remote())
        except Exception as exc:
            log.error("worker %s could not start: %s", worker.name, exc)
            self._failures[worker.node_id] = self._failures.get(worker.node_id, 0) + 1
            self._drop(worker)
            return
        self._failures.pop(worker.node_id, None)
        worker.node, worker.pid = info["node"], info["pid"]
        worker._warm = list(info["models_warm"])
        worker.ready = True
        if worker in self.starting:
            self.starting.remove(worker)
            self.workers.append(worker)
            self.workers.sort(key=lambda w: w.seq if isinstance(w, RayWorker) else 0)
            log.info("worker %s ready on %s (pid %d)", worker.name, worker.node, worker.pid)
            self.changed()

    def _drop(self, worker: RayWorker) -> None:
        worker.lost = True
        worker.gone.set()
        if worker in self.starting:
            self.starting.remove(worker)
        self.workers = [w for w in self.workers if w is not worker]
        kill(worker.actor)

    def lost(self, worker: Worker) -> None:
        """A worker died mid-job: drop it and look for room for a new one at once."""
        if isinstance(worker, RayWorker):
            self._drop(worker)
        self._spawn(self.reconcile())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ job inputs

    def job_ref(self, record: JobRecord) -> tuple[Any, float]:
        """The job's request in the object store (put on its first run, reused after) and the
        seconds the put took."""
        ref = self._refs.get(record.job_id)
        if ref is not None:
            return ref, 0.0
        started = time.perf_counter()
        ref = self._refs[record.job_id] = ray.put(record.work)
        return ref, time.perf_counter() - started

    def forget(self, job_id: str) -> None:
        self._refs.pop(job_id, None)
