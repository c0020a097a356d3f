"""The job queue and the device worker.

Jobs wait in a priority queue (higher ``priority`` first, then arrival). One worker per device
takes them one at a time and runs the engine on a single dedicated thread, so one owner holds
the models (diffusers pipelines are not thread-safe) while the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from brushlink.plugin.errors import BrushlinkError, InternalError
from brushlink.plugin.frames import encode_frame
from brushlink.plugin.jobs import JobState
from brushlink.plugin.protocol import (
    Cancelled,
    Failed,
    Preview,
    Progress,
    Queued,
    Result,
    ResultImage,
    Started,
)

from .engines.base import EngineResult, JobCancelled, JobContext
from .images import encode_image, encode_rgba
from .jobs import JobRecord

log = logging.getLogger("brushlink.scheduler")

PREVIEW_MAX_SIDE = 256


class Scheduler:
    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._heap: list[tuple[int, int, JobRecord]] = []
        self._order = itertools.count()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"worker-{device}")
        self._worker: asyncio.Task[None] | None = None
        self.running: JobRecord | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self.running is not None:
            self.running.cancel_flag.set()
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ queue

    def enqueue(self, record: JobRecord) -> None:
        record.state = JobState.QUEUED
        heapq.heappush(self._heap, (-record.priority, next(self._order), record))
        record.emit(Queued(record.job_id, position=self.position(record)))
        self._wakeup.set()

    def position(self, record: JobRecord) -> int:
        """How many jobs will run before this one (the running job included)."""
        ahead = sum(1 for item in self._heap if item[2] is not record and item < self._key(record))
        return ahead + (1 if self.running is not None else 0)

    def _key(self, record: JobRecord) -> tuple[int, int, JobRecord]:
        return next(item for item in self._heap if item[2] is record)

    def cancel(self, record: JobRecord) -> None:
        """Set the flag; a queued job is answered at once, a running one at its next step."""
        record.cancel_flag.set()
        if record.state is JobState.QUEUED:
            self._heap = [item for item in self._heap if item[2] is not record]
            heapq.heapify(self._heap)
            record.emit(Cancelled(record.job_id))

    # ------------------------------------------------------------------ worker

    async def _work(self) -> None:
        while True:
            while not self._heap:
                self._wakeup.clear()
                await self._wakeup.wait()
            *_, record = heapq.heappop(self._heap)
            self.running = record
            try:
                await self._run(record)
            except Exception:  # the worker must survive anything a job does
                log.exception("job %s crashed the worker step", record.job_id)
            finally:
                self.running = None

    async def _run(self, record: JobRecord) -> None:
        loop = asyncio.get_running_loop()
        job = record.work
        assert job is not None  # queued jobs hold their decoded request
        record.state = JobState.STARTED
        record.emit(Started(record.job_id))
        for index, (_, _, other) in enumerate(sorted(self._heap)):
            other.emit(Queued(other.job_id, position=index + 1))

        def on_progress(step: int, total: int) -> None:
            record.last_progress = (step, total)
            loop.call_soon_threadsafe(record.emit, Progress(record.job_id, step, total))

        def on_preview(image: np.ndarray, step: int, total: int) -> None:
            frame = encode_frame(record.job_id, "preview", 0, encode_rgba(_small(image)))
            loop.call_soon_threadsafe(
                record.emit, Preview(record.job_id, step=step, total=total), [frame]
            )

        ctx = JobContext(
            device=self.device,
            on_progress=on_progress,
            on_preview=on_preview,
            is_cancelled=record.cancel_flag.is_set,
        )
        started = time.monotonic()

        def execute() -> tuple[EngineResult, list[bytes], float]:
            ctx.check_cancelled()
            result = record.engine.run(job, ctx)
            run_s = time.monotonic() - started
            frames = [
                encode_frame(record.job_id, "result", i, encode_image(out.image, record.encoding))
                for i, out in enumerate(result.images)
            ]
            return result, frames, run_s

        try:
            result, frames, run_s = await loop.run_in_executor(self._executor, execute)
        except JobCancelled:
            record.emit(Cancelled(record.job_id))
            return
        except BrushlinkError as err:
            record.emit(Failed.from_error(record.job_id, err))
            return
        except Exception:
            log.exception("engine %s failed on job %s", record.engine.name, record.job_id)
            record.emit(Failed.from_error(record.job_id, InternalError()))
            return
        finished = time.monotonic()
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
        metadata = {
            "engine": record.engine.name,
            "model": record.card.name,
            "seed": record.seed,
            "device": self.device,
            "timings": {
                "decode_s": round(record.decode_s, 4),
                "queued_s": round(started - record.arrived, 4),
                "run_s": round(run_s, 4),
                "encode_s": round(finished - started - run_s, 4),
            },
            **result.metadata,
        }
        record.emit(Result(record.job_id, images=images, metadata=metadata), frames)


def _small(image: np.ndarray) -> np.ndarray:
    """Previews are for the eye: at most 256 px on a side keeps them cheap to send."""
    import cv2

    height, width = image.shape[:2]
    scale = PREVIEW_MAX_SIDE / max(height, width)
    if scale >= 1:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
