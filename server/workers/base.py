"""Workers: where engines run. The scheduler hands each one job at a time.

A worker runs a job with progress, previews and cancel, says which models it holds warm (a job
goes to a free worker holding its model when there is one) and how loaded it is. Kinds:

* ``LocalWorker`` (``local.py``): one device of this machine, its own engines, its own thread;
* ``RayWorker`` (``ray_pool.py``): an actor on any node of a Ray cluster.

What runs inside a worker (the engine call and the encoding of its outputs) is ``execute``,
the same for both, so a result looks the same wherever it ran.
"""

from __future__ import annotations

import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from brushlink.plugin.frames import encode_frame
from brushlink.plugin.protocol import ResultImage, WorkerInfo

from ..engines.base import Engine, EngineJob, JobContext
from ..images import encode_image, encode_rgba
from ..jobs import JobRecord

PREVIEW_MAX_SIDE = 256
HOSTNAME = socket.gethostname()


class WorkerLost(Exception):
    """The worker died while it ran a job (its process or its machine): the job may run again
    on another worker, from the start."""


@dataclass
class Outcome:
    """A finished job as a worker hands it back: result images (described and encoded as the
    job's link wants them) and the engine's metadata."""

    images: list[ResultImage]
    frames: list[bytes]  # one binary result frame per image
    metadata: dict[str, Any]
    run_s: float  # the engine's run
    encode_s: float  # encoding the result images
    timings: dict[str, float] = field(default_factory=dict)  # the worker's own (dispatch_s, ...)


class JobEvents(Protocol):
    """What a worker reports while a job runs (called on the server's event loop)."""

    def progress(self, step: int, total: int) -> None: ...
    def preview(self, frame: bytes, step: int, total: int) -> None: ...


class Worker(ABC):
    """One place where jobs run, one job at a time."""

    name: str
    device: str
    node: str = HOSTNAME

    def __init__(self) -> None:
        self.running: JobRecord | None = None  # set by the scheduler while it runs a job here
        self.jobs_run = 0
        self.ready = True  # takes jobs (a Ray actor is ready once its engines are built)
        self.lost = False  # died: takes no more jobs, the pool replaces it

    @property
    def free(self) -> bool:
        return self.ready and not self.lost and self.running is None

    @abstractmethod
    def warm(self) -> list[str]:
        """The models it holds loaded now."""

    def load(self) -> float:
        """How busy it is, 0 (idle) to 1 (every slot taken)."""
        return 0.0 if self.running is None else 1.0

    @abstractmethod
    async def run(self, record: JobRecord, events: JobEvents) -> Outcome:
        """Run the job; raise ``JobCancelled``, a ``BrushlinkError``, or ``WorkerLost``."""

    def cancel(self, record: JobRecord) -> None:  # noqa: B027 - local workers share the flag
        """The job's cancel flag was set: make sure the engine running it sees it."""

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            name=self.name,
            device=self.device,
            node=self.node,
            models_warm=self.warm(),
            busy=self.running is not None,
        )

    async def close(self) -> None:  # noqa: B027 - optional
        """Stop: free its engines (a job still running is cancelled first by the scheduler)."""


class Pool(ABC):
    """The workers a scheduler dispatches to; ``changed`` is called when some become free,
    ready or lost, so the scheduler looks at its queue again."""

    workers: list[Worker]

    async def start(self, changed: Callable[[], None]) -> None:
        self.changed = changed

    async def stop(self) -> None:
        for worker in self.workers:
            await worker.close()

    def lost(self, worker: Worker) -> None:
        """A worker died mid-job: drop it (a pool that can, replaces it)."""
        worker.lost = True
        self.workers = [w for w in self.workers if w is not worker]

    def forget(self, job_id: str) -> None:  # noqa: B027 - optional
        """The job has its final answer: drop anything kept for running it again."""


# ------------------------------------------------------------------------ inside a worker


def execute(engine: Engine, job: EngineJob, ctx: JobContext, encoding: str) -> Outcome:
    """Run the engine on the job and encode its images for the link (on the worker's thread)."""
    ctx.check_cancelled()
    started = time.perf_counter()
    result = engine.run(job, ctx)
    ran = time.perf_counter()
    frames = [
        encode_frame(job.job_id, "result", i, encode_image(out.image, encoding))
        for i, out in enumerate(result.images)
    ]
    images = [
        ResultImage(
            index=i,
            width=int(out.image.shape[1]),
            height=int(out.image.shape[0]),
            seed=out.seed,
            score=out.score,
        )
        for i, out in enumerate(result.images)
    ]
    return Outcome(images, frames, result.metadata, ran - started, time.perf_counter() - ran)


def preview_frame(job_id: str, image: np.ndarray) -> bytes:
    """A preview is for the eye: at most 256 px on a side keeps it cheap to send."""
    import cv2

    height, width = image.shape[:2]
    scale = PREVIEW_MAX_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return encode_frame(job_id, "preview", 0, encode_rgba(image))


class WarmBook:
    """Which models a set of engines holds loaded: what each engine says, or for an engine that
    cannot tell (the weight-free ones), the models it ran."""

    def __init__(self) -> None:
        self._ran: dict[str, list[str]] = {}

    def ran(self, engine: str, model: str) -> None:
        models = self._ran.setdefault(engine, [])
        if model not in models:
            models.append(model)

    def warm(self, engines: list[Engine]) -> list[str]:
        names: list[str] = []
        for engine in engines:
            told = engine.warm_models()
            names.extend(told if told is not None else self._ran.get(engine.name, []))
        return names
