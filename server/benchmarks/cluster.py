"""Jobs per second with one worker and with N, side by side in one run, local and on Ray.

    brushlink bench cluster                      # N = the machine's cores
    brushlink bench cluster --workers 2 --jobs 24 --clients 4 --size 256 --steps 20

For each kind of worker — local workers (threads of the server's process, ``--workers``) and
Ray workers (actors of a Ray started by the bench on this machine, ``--ray``) — a real server
subprocess with one worker, then one with N, runs the same ``generate`` jobs of the built-in
model (one torch thread per worker) sent at once by several concurrent clients, in a few timed
batches after a warm-up; the fastest batch counts. Printed: jobs
per second, the ratio N workers / one worker, and each job's overheads beside its run (medians,
from the result's timings): the queue, the dispatch to the worker, moving its images through
the object store, one progress event's relay from the worker to the server, encoding the
result, and what is left of the client's round trip (the front: validation, the socket);
then a worker's gap per job (its time per job beyond the engine's run and encoding, from the
jobs per second: what dispatching and relaying cost it) and, for Ray, the server process's CPU
per job (what bounds how many workers one front can feed), and how many cores other people's
processes took during the run (read the ratio only from a run where that is near 0).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from brushlink.plugin.client import Client
from brushlink.plugin.protocol import Result
from brushlink.plugin.request import Job, Request

from .machine import CpuWatch
from .serving import start_server

PARTS = ("queued_s", "dispatch_s", "transfer_s", "relay_s", "encode_s", "run_s")


def _job(size: int, steps: int, seed: int) -> Job:
    spec = Request(
        kind="generate",
        model="builtin",
        prompt="blue and white polka dots",
        width=size,
        height=size,
        steps=steps,
        seed=seed,
    )
    return Job(spec)


async def _client(url: str, token: str, jobs: list[Job]) -> list[tuple[float, Result]]:
    async with Client(url, token) as client:
        sent = {}
        handles = []
        for job in jobs:
            handles.append(await client.submit(job))
            sent[handles[-1].job_id] = time.perf_counter()

        async def wait(handle: Any) -> tuple[float, Result]:
            result = await handle.result()
            return time.perf_counter() - sent[handle.job_id], result

        return list(await asyncio.gather(*(wait(h) for h in handles)))


async def _drive(url: str, token: str, jobs: list[Job], clients: int) -> list[Any]:
    shares = [jobs[i::clients] for i in range(clients)]
    done = await asyncio.gather(*(_client(url, token, s) for s in shares if s))
    return [item for share in done for item in share]


def _measure(args: list[str], opts: argparse.Namespace, workers: int) -> dict[str, Any]:
    """A server with these flags: after a warm-up, ``opts.repeats`` timed batches; the
    fastest counts (on a shared machine other work only ever slows a batch down)."""
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
        proc, url, token = start_server(Path(home), "--device", "cpu", *args, env=env)
        try:
            warm = [_job(opts.size, 2, 900 + k) for k in range(workers)]
            asyncio.run(_drive(url, token, warm, workers))  # each worker loads the model
            batches = [_batch(proc.pid, url, token, opts) for _ in range(opts.repeats)]
        finally:
            proc.terminate()
            proc.wait()
    return {"workers": workers, **max(batches, key=lambda b: b["jobs_per_s"])}


def _batch(pid: int, url: str, token: str, opts: argparse.Namespace) -> dict[str, Any]:
    jobs = [_job(opts.size, opts.steps, k) for k in range(opts.jobs)]
    cpu = _cpu_s(pid)
    with CpuWatch() as watch:
        started = time.perf_counter()
        done = asyncio.run(_drive(url, token, jobs, opts.clients))
        elapsed = time.perf_counter() - started
    cpu = _cpu_s(pid) - cpu
    timings = [r.metadata["timings"] for _, r in done]
    median = {p: statistics.median(t.get(p, 0.0) for t in timings) * 1000 for p in PARTS}
    server_side = [sum(t.get(p, 0.0) for p in PARTS if p != "relay_s") for t in timings]
    fronts = [trip - inside for (trip, _), inside in zip(done, server_side, strict=True)]
    # a worker's time per job beyond the engine's run and encoding: what dispatching costs it
    workers = len({r.metadata["worker"] for _, r in done})
    busy = statistics.mean(t["run_s"] + t["encode_s"] for t in timings)
    gap = elapsed * workers / len(done) - busy
    return {
        "placed_on": workers,
        "jobs_per_s": len(done) / elapsed,
        "others": watch.others,  # cores other people's processes took meanwhile
        "ms": {
            **median,
            "front": statistics.median(fronts) * 1000,
            "gap": gap * 1000,
            "front_cpu": cpu / len(done) * 1000,  # the server process's CPU per job
        },
    }


def _cpu_s(pid: int) -> float:
    """CPU seconds a process has used (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _start_ray(cpus: int) -> tuple[str, Callable[[], None]]:
    """A Ray of this machine's own, for the bench's servers to join: with token authentication
    (Ray >= 2.52), the token passed to them in the environment, not written to a file."""
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    context = ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    return str(context.address_info["gcs_address"]), ray.shutdown


def run_cluster_bench(opts: argparse.Namespace) -> dict[str, list[dict[str, Any]]]:
    n = opts.workers
    runs: dict[str, list[dict[str, Any]]] = {}
    local = [_measure(["--workers", str(k)], opts, k) for k in (1, n)]
    runs["local workers"] = local
    if not opts.no_ray:
        address, shutdown = _start_ray(n)
        try:
            ray_args = ["--ray", address, "--ray-cpus-per-worker", "1", "--workers"]
            runs["ray workers"] = [_measure([*ray_args, str(k)], opts, k) for k in (1, n)]
        finally:
            shutdown()
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="brushlink bench cluster")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="N")
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="timed batches; the fastest counts")
    parser.add_argument("--no-ray", action="store_true", help="local workers only")
    opts = parser.parse_args([] if argv is None else argv)
    load = os.getloadavg()
    runs = run_cluster_bench(opts)
    print(
        f"cluster benchmark: {opts.jobs} `generate` jobs of the built-in model, {opts.size} px, "
        f"{opts.steps} steps, from {opts.clients} clients at once; one torch thread per worker; "
        f"{os.cpu_count()} cores; load average {load[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after"
    )
    print(
        f"{'':<17}workers  jobs/s  ratio | per job, median ms: run  queue  dispatch  transfer"
        "  relay/event  encode  front  | worker gap  front CPU | others"
    )
    for kind, (one, many) in runs.items():
        for r in (one, many):
            ratio = f"{r['jobs_per_s'] / one['jobs_per_s']:5.2f}" if r is many else " " * 5
            ms = r["ms"]
            # in a local run the server's process is the workers' too: its CPU is theirs
            cpu = f"{ms['front_cpu']:9.1f}" if kind.startswith("ray") else f"{'-':>9}"
            print(
                f"  {kind:<15}{r['workers']:>5}  {r['jobs_per_s']:6.2f}  {ratio} |"
                f"{ms['run_s']:23.0f} {ms['queued_s']:6.0f} {ms['dispatch_s']:9.1f} "
                f"{ms['transfer_s']:9.1f} {ms['relay_s']:12.1f} {ms['encode_s']:7.1f} "
                f"{ms['front']:6.1f}  | {ms['gap']:10.1f}  {cpu} | {r['others']:6.2f}"
            )
        share = many["jobs_per_s"] / one["jobs_per_s"] / many["workers"]
        print(
            f"  {'':<15}{many['workers']} workers = {share:.2f} x {many['workers']} x one "
            f"worker (jobs placed on {many['placed_on']} workers)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
