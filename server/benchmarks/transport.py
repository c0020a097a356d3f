"""What the server adds to a job: round trips over loopback beside the same engine in-process.

    brushlink bench transport

1. a trivial job (16x16 `style`, strength 0) through a real server subprocess, and the same
   engine's ``run`` called directly, median of many, side by side;
2. a 2048x2048 RGBA photo's round trip on a strength-0 job, split into the server's PNG codec
   time (decode the upload, encode the result: reported in the result's timings) and the rest,
   which is the transfer itself: both PNGs over the socket, framing, and the client's handling.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.request import Job, Request

from ..engines.base import EngineJob, JobContext
from ..engines.filters.engine import FiltersEngine
from ..images import decode_rgba, encode_rgba


def _start_server(home: Path) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "brushlink.server.cli.main",
            "serve",
            "--port",
            "0",
            "--home",
            str(home),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("brushlink listening on "):
        proc.kill()
        raise RuntimeError("the benchmark server did not start")
    return proc, line.split()[-1], (home / "token").read_text().strip()


def _photo(side: int) -> np.ndarray:
    from skimage import data

    return cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2RGBA), (side, side))


def _engine_ms(image: np.ndarray, repeats: int) -> float:
    engine = FiltersEngine()
    (model,) = engine.models()
    spec = Request(kind="style", style="detail", strength=0.0)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.run(EngineJob("bench", spec, model, 0, image=image), JobContext())
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def run_transport_bench(small_repeats: int = 60, big_repeats: int = 5) -> dict[str, Any]:
    small = _photo(16)
    big = _photo(2048)
    spec = Request(kind="style", style="detail", strength=0.0)
    with tempfile.TemporaryDirectory() as home:
        proc, url, token = _start_server(Path(home))
        try:
            client = BlockingClient(url, token, timeout=120)
            client.connect()
            small_png = encode_rgba(small)
            client.run(Job(spec, image=small_png))  # warm-up
            trips = []
            for _ in range(small_repeats):
                start = time.perf_counter()
                client.run(Job(spec, image=small_png))
                trips.append(time.perf_counter() - start)
            big_png = encode_rgba(big)
            big_trips, codecs, transfers = [], [], []
            for _ in range(big_repeats):
                start = time.perf_counter()
                result = client.run(Job(spec, image=big_png))
                trip = time.perf_counter() - start
                timings = result.metadata["timings"]
                codec = timings["decode_s"] + timings["encode_s"]
                big_trips.append(trip)
                codecs.append(codec)
                transfers.append(trip - codec - timings["run_s"])
            assert decode_rgba(result.images[0].data or b"", "r").shape == big.shape
            client.close()
        finally:
            proc.terminate()
            proc.wait()
    engine_small = _engine_ms(small, small_repeats)
    engine_big = _engine_ms(big, big_repeats)
    round_trip = statistics.median(trips) * 1000
    big_trip = statistics.median(big_trips) * 1000
    return {
        "small_round_trip_ms": round(round_trip, 2),
        "small_in_process_ms": round(engine_small, 3),
        "small_overhead_ms": round(round_trip - engine_small, 2),
        "png_bytes_2048": len(big_png),
        "round_trip_2048_ms": round(big_trip, 1),
        "in_process_2048_ms": round(engine_big, 1),
        "png_codec_2048_ms": round(statistics.median(codecs) * 1000, 1),
        "transfer_2048_ms": round(statistics.median(transfers) * 1000, 1),
    }


def main() -> int:
    r = run_transport_bench()
    print("transport benchmark (server subprocess on loopback vs the same engine in-process)")
    print(f"  trivial job round trip    {r['small_round_trip_ms']:8.2f} ms   (goal <= 20 ms)")
    print(f"  same engine in-process    {r['small_in_process_ms']:8.3f} ms")
    print(f"  server adds               {r['small_overhead_ms']:8.2f} ms")
    print(f"  2048x2048 RGBA photo PNG  {r['png_bytes_2048'] / 2**20:8.2f} MiB")
    print(f"  round trip (up + down)    {r['round_trip_2048_ms']:8.1f} ms")
    print(f"  same engine in-process    {r['in_process_2048_ms']:8.1f} ms")
    print(f"  server PNG decode+encode  {r['png_codec_2048_ms']:8.1f} ms")
    print(f"  transfer both ways        {r['transfer_2048_ms']:8.1f} ms   (goal <= 100 ms)")
    return 0
