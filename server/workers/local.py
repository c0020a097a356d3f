"""Local workers: one per device of this machine (every GPU), or ``--workers N`` on the CPU.

Each worker holds its own engines (``build_registry(config, device)``) and runs them on its own
single thread, so one owner holds each model (diffusers pipelines are not thread-safe) while
the event loop keeps serving. An exception in a job fails that job (``engine_error``, or
``internal_error``); the worker goes on.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..config import ServerConfig
from ..engines.base import JobContext
from ..engines.registry import EngineRegistry
from ..jobs import JobRecord
from .base import JobEvents, Outcome, Pool, WarmBook, Worker, execute, preview_frame


class LocalWorker(Worker):
    def __init__(self, name: str, device: str, registry: EngineRegistry) -> None:
        super().__init__()
        self.name = name
        self.device = device
        self.registry = registry
        self._warm = WarmBook()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"worker-{name}")

    def warm(self) -> list[str]:
        return self._warm.warm(self.registry.engines())

    async def run(self, record: JobRecord, events: JobEvents) -> Outcome:
        loop = asyncio.get_running_loop()
        job = record.work
        assert job is not None  # queued jobs hold their decoded request
        engine = self.registry.engine(record.engine.name)
        relays: list[float] = []

        def relay_progress(sent: float, step: int, total: int) -> None:
            relays.append(time.perf_counter() - sent)
            events.progress(step, total)

        def on_progress(step: int, total: int) -> None:
            loop.call_soon_threadsafe(relay_progress, time.perf_counter(), step, total)

        def on_preview(image: np.ndarray, step: int, total: int) -> None:
            frame = preview_frame(record.job_id, image)
            loop.call_soon_threadsafe(events.preview, frame, step, total)

        ctx = JobContext(
            device=self.device,
            on_progress=on_progress,
            on_preview=on_preview,
            is_cancelled=record.cancel_flag.is_set,
        )
        dispatched = time.perf_counter()

        def work() -> Outcome:
            begun = time.perf_counter()
            outcome = execute(engine, job, ctx, record.encoding)
            outcome.timings["dispatch_s"] = begun - dispatched
            return outcome

        try:
            outcome = await loop.run_in_executor(self._executor, work)
        finally:
            self._warm.ran(engine.name, record.card.name)
        await asyncio.sleep(0)  # progress events queued by the thread go out before the result
        outcome.timings["relay_s"] = sum(relays) / len(relays) if relays else 0.0
        outcome.timings["transfer_s"] = 0.0
        return outcome

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        for engine in self.registry.engines():
            engine.unload()


class LocalPool(Pool):
    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers


def worker_devices(device: str, workers: int = 0) -> list[str]:
    """The devices local workers run on: ``auto`` and ``cuda``: every GPU (``cuda:0``,
    ``cuda:1``, ...), else ``mps`` on Apple silicon, else the CPU; ``cuda:N``, ``cpu``,
    ``mps``: that one. ``workers`` > 0 asks for that many workers, spread over those devices in
    turn (``--workers 4`` on the CPU: four CPU workers)."""
    if device in ("auto", "cuda"):
        import torch

        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            devices = [f"cuda:{i}" for i in range(count)] if count > 1 else ["cuda"]
        elif (
            device == "auto"
            and getattr(torch.backends, "mps", None)
            and (torch.backends.mps.is_available())
        ):
            devices = ["mps"]
        else:
            devices = ["cuda"] if device == "cuda" else ["cpu"]
    else:
        devices = [device]
    if workers > 0:
        devices = [devices[i % len(devices)] for i in range(workers)]
    return devices


def worker_name(device: str, index: int) -> str:
    """``cpu-0``, ``cpu-1``, ``cuda-0``, ``cuda-1``, ``mps-0``."""
    kind, _, number = device.partition(":")
    return f"{kind}-{number or index}"


def local_pool(config: ServerConfig, registry: EngineRegistry, device: str) -> LocalPool:
    """One worker per device (every GPU), or ``config.workers`` of them. The first worker on
    ``device`` uses the server's own registry (as a one-worker server always has); every other
    builds its own engines. CPU workers share the cores: torch gets cores / N threads each."""
    from ..engines.catalog import build_registry

    devices = worker_devices(config.device, config.workers)
    shared = device if device in devices else None
    workers: list[Worker] = []
    for index, where in enumerate(devices):
        if where == shared:
            own, shared = registry, None
        else:
            own = build_registry(config, where)
        workers.append(LocalWorker(worker_name(where, index), where, own))
    on_cpu = sum(1 for d in devices if d == "cpu")
    if on_cpu > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // on_cpu))
    return LocalPool(workers)
