"""What the server adds to a job: round trips over loopback beside the same engine in-process.

    brushlink bench transport

1. a trivial job (16x16 `style`, strength 0) through a real server subprocess, and the same
   engine's ``run`` called directly, median of many, side by side;
2. a 1024x1024 and a 2048x2048 RGBA photo's round trip on a strength-0 job, as PNG and as raw
   B, G, R, A pixels (what a loopback link negotiates, docs/protocol.md), side by side, split
   into the server's image codec time (decode the upload, encode the result: reported in the
   result's timings) and the rest, which is the transfer itself: both images over the socket,
   framing, and the client's handling. (The host's own side, Krita's, is measured by
   `brushlink bench krita`.)
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from brushlink.plugin.blocking import BlockingClient
from brushlink.plugin.frames import Pixels, image_size
from brushlink.plugin.request import Job, Request

from ..engines.base import EngineJob, JobContext
from ..engines.filters.engine import FiltersEngine
from ..images import encode_rgba
from .serving import start_server


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


def _big_trips(
    url: str, token: str, image: np.ndarray, raw: bool, repeats: int
) -> dict[str, float]:
    """Median round trip, server codec and transfer of one picture, as PNG or as raw pixels."""
    spec = Request(kind="style", style="detail", strength=0.0)
    height, width = image.shape[:2]
    if raw:
        bgra = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA).tobytes()
        upload: bytes | Pixels = Pixels(width, height, bgra, "bgra8")
    else:
        upload = encode_rgba(image)
    client = BlockingClient(url, token, timeout=120, encodings=("bgra8",) if raw else ("png",))
    client.connect()
    trips, codecs, transfers = [], [], []
    try:
        client.run(Job(spec, image=upload))  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            result = client.run(Job(spec, image=upload))
            trip = time.perf_counter() - start
            timings = result.metadata["timings"]
            codec = timings["decode_s"] + timings["encode_s"]
            trips.append(trip)
            codecs.append(codec)
            transfers.append(trip - codec - timings["run_s"])
        out = result.images[0].data
        assert isinstance(out, Pixels) == raw  # the link negotiated what was asked
    finally:
        client.close()
    return {
        "bytes": float(image_size(upload)),
        "round_trip_ms": statistics.median(trips) * 1000,
        "codec_ms": statistics.median(codecs) * 1000,
        "transfer_ms": statistics.median(transfers) * 1000,
    }


def run_transport_bench(small_repeats: int = 60, big_repeats: int = 5) -> dict[str, Any]:
    small = _photo(16)
    spec = Request(kind="style", style="detail", strength=0.0)
    big: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as home:
        proc, url, token = start_server(Path(home))
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
            client.close()
            for side in (1024, 2048):
                photo = _photo(side)
                for raw in (False, True):
                    big[f"{side} {'raw' if raw else 'png'}"] = _big_trips(
                        url, token, photo, raw, big_repeats
                    )
        finally:
            proc.terminate()
            proc.wait()
    engine_small = _engine_ms(small, small_repeats)
    round_trip = statistics.median(trips) * 1000
    return {
        "small_round_trip_ms": round(round_trip, 2),
        "small_in_process_ms": round(engine_small, 3),
        "small_overhead_ms": round(round_trip - engine_small, 2),
        "big": {k: {n: round(v, 1) for n, v in d.items()} for k, d in big.items()},
        "in_process_2048_ms": round(_engine_ms(_photo(2048), big_repeats), 1),
    }


def main() -> int:
    r = run_transport_bench()
    print("transport benchmark (server subprocess on loopback vs the same engine in-process)")
    print(f"  trivial job round trip    {r['small_round_trip_ms']:8.2f} ms   (goal <= 20 ms)")
    print(f"  same engine in-process    {r['small_in_process_ms']:8.3f} ms")
    print(f"  server adds               {r['small_overhead_ms']:8.2f} ms")
    print(f"  2048x2048 engine in-process {r['in_process_2048_ms']:6.1f} ms (strength 0: a copy)")
    print("  RGBA photo, up and back    MiB up   round trip   server codec   transfer")
    for name, d in r["big"].items():
        print(
            f"  {name:<25} {d['bytes'] / 2**20:7.2f} {d['round_trip_ms']:10.1f} ms "
            f"{d['codec_ms']:10.1f} ms {d['transfer_ms']:8.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
