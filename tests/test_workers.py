"""Several local workers behind one server (`brushlink serve --workers 2`), over a real socket:
jobs run side by side, a worker holding a job's model draws it, priorities hold across workers,
a cancel stops the job on its own worker only. Placement itself is tested on its own first."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fixtures.workers import (
    fill,
    run,
    start_order_by_priority,
    start_server,
    submit,
    texture,
    until_progress,
    welcome,
)

from brushlink.plugin.client import Client
from brushlink.plugin.protocol import Cancelled, Progress, WorkerInfo
from brushlink.server.scheduler import choose
from brushlink.server.workers.base import Worker
from brushlink.server.workers.local import worker_devices, worker_name

# ----------------------------------------------------------------------------- placement


class FakeWorker(Worker):
    def __init__(self, name: str, warm: list[str], jobs_run: int = 0) -> None:
        super().__init__()
        self.name, self.device, self._models = name, "cpu", warm
        self.jobs_run = jobs_run

    def warm(self) -> list[str]:
        return self._models

    async def run(self, record, events):  # pragma: no cover - placement only
        raise NotImplementedError


def test_a_job_goes_to_a_free_worker_holding_its_model_else_the_least_spoken_for() -> None:
    a, b, c = FakeWorker("a", ["sd15"]), FakeWorker("b", ["sdxl"]), FakeWorker("c", [])
    assert choose("sdxl", [a, b, c]) is b
    assert choose("sd15", [a, b, c]) is a
    # no one holds it: the worker holding nothing takes it, so the warm ones stay free for theirs
    assert choose("builtin", [a, b, c]) is c
    # two hold it: the one that ran fewer jobs
    d = FakeWorker("d", ["sd15"], jobs_run=5)
    assert choose("sd15", [d, a]) is a


def test_devices_every_gpu_or_n_cpu_workers() -> None:
    assert worker_devices("cpu", 3) == ["cpu", "cpu", "cpu"]
    assert worker_devices("cpu") == ["cpu"]
    assert worker_devices("cuda:1") == ["cuda:1"]
    assert [worker_name(d, i) for i, d in enumerate(["cpu", "cpu"])] == ["cpu-0", "cpu-1"]
    assert [worker_name(d, i) for i, d in enumerate(["cuda:0", "cuda:1"])] == ["cuda-0", "cuda-1"]


# ----------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    server = start_server(tmp_path_factory.mktemp("two-workers"), "--workers", "2")
    yield server
    server.stop()


def test_the_welcome_lists_two_cpu_workers(two_workers) -> None:
    hello = run(welcome(two_workers.url, two_workers.token))
    assert hello.version == "1.3"
    assert [(w.name, w.device, w.busy) for w in hello.workers] == [
        ("cpu-0", "cpu", False),
        ("cpu-1", "cpu", False),
    ]
    assert all(isinstance(w, WorkerInfo) and w.node for w in hello.workers)


def test_two_workers_run_two_jobs_at_once(two_workers) -> None:
    async def main():
        async with Client(two_workers.url, two_workers.token) as client:
            jobs = [await submit(client, texture(steps=60, seed=s)) for s in (1, 2)]
            return await asyncio.gather(*(j.follow() for j in jobs))

    first, second = run(main())
    assert {first.worker, second.worker} == {"cpu-0", "cpu-1"}
    # both ran at the same time: each started before the other ended, and their steps
    # interleave (the second reported progress before the first's last step)
    assert first.started < second.ended and second.started < first.ended
    assert second.times(Progress)[0] < first.times(Progress)[-1]
    assert first.times(Progress)[0] < second.times(Progress)[-1]
    for job in (first, second):
        assert job.types.count("result") == 1 and job.steps[-1] == 60


def test_a_worker_holding_a_model_draws_its_jobs(tmp_path) -> None:
    server = start_server(tmp_path, "--workers", "2")
    try:

        async def main():
            placed = []
            async with Client(server.url, server.token) as client:
                for job in (texture, fill, texture, fill, texture, fill):
                    placed.append((job.__name__, (await (await submit(client, job())).follow())))
            return placed, await welcome(server.url, server.token)

        placed, hello = run(main())
    finally:
        server.stop()
    on = {name: {t.worker for n, t in placed if n == name} for name in ("texture", "fill")}
    # every built-in job ran on one worker, every fill job on the other, though each ran alone
    # (both workers free): the first fill went to the worker holding nothing, and after that
    # each model's jobs went to the worker holding it
    assert len(on["texture"]) == 1 and len(on["fill"]) == 1 and on["texture"] != on["fill"]
    warm = {w.name: w.models_warm for w in hello.workers}
    assert warm[next(iter(on["texture"]))] == ["builtin"]
    assert warm[next(iter(on["fill"]))] == ["fill"]


def test_priorities_hold_across_workers(two_workers) -> None:
    assert start_order_by_priority(two_workers.url, two_workers.token) == [
        "top",
        "high",
        "middle",
        "low",
    ]


def test_cancel_reaches_the_worker_running_the_job_and_frees_it(two_workers) -> None:
    async def main():
        async with Client(two_workers.url, two_workers.token) as client:
            doomed, other = [await submit(client, texture(steps=100, seed=s)) for s in (1, 2)]
            following = [asyncio.create_task(j.follow()) for j in (doomed, other)]
            await asyncio.gather(until_progress(doomed, 3), until_progress(other, 3))
            await client.cancel(doomed.handle.job_id)
            await following[0]
            # the cancelled job's worker is free again while the other still runs
            after = await submit(client, texture(steps=5, seed=3))
            await after.follow()
            await following[1]
            return doomed, other, after

    doomed, other, after = run(main())
    assert isinstance(doomed.events[-1][1], Cancelled)
    assert doomed.steps[-1] < 100 and other.steps[-1] == 100
    assert other.types.count("result") == 1 and "cancelled" not in other.types
    assert after.worker != other.worker and after.ended < other.ended
