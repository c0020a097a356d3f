"""Time the weight-free engines on large photos: every style at 2048 x 2048, and the fill of
discs of growing size on a 2048 x 1365 photo with each method.

    brushlink bench weight-free

Prints wall and CPU seconds per case and the load average, since wall time on a shared machine
says as much about the neighbours as about the engine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import cv2
import numpy as np

from brushlink.plugin.protocol import JobSpec

from ..engines.base import EngineJob, EngineResult, JobContext
from ..engines.fill import METHODS, FillEngine
from ..engines.filters import STYLES, FiltersEngine


def rgba(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    big = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.dstack([big, np.full((height, width), 255, np.uint8)])


def timed(run: Callable[[], EngineResult], repeat: int) -> tuple[float, float, EngineResult]:
    """Best wall and CPU seconds over ``repeat`` runs."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = run()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best[0], best[1], result


def main() -> int:
    try:
        from skimage import data  # the test photos; a development dependency
    except ImportError:
        print("This benchmark uses scikit-image's sample photos: pip install 'brushlink[dev]'.")
        return 2
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    filters = FiltersEngine()
    model = filters.models()[0]
    image = rgba(data.astronaut(), 2048, 2048)
    reference = rgba(data.rocket(), 640, 427)
    for style in [*STYLES, None]:
        spec = JobSpec(kind="style", style=style)
        job = EngineJob(
            "bench", spec, model, 0, image=image, reference=None if style else reference
        )
        wall, cpu, _ = timed(lambda job=job: filters.run(job, JobContext()), 2)
        print(
            f"filters 2048x2048 {style or 'colour transfer':16s} {wall:6.2f} s wall {cpu:6.2f} s CPU"
        )

    fill = FillEngine()
    model = fill.models()[0]
    photo = rgba(data.coffee(), 2048, 1365)
    for side in (64, 128, 512, 1024):
        mask = np.zeros(photo.shape[:2], np.uint8)
        cv2.circle(mask, (1700, 700), side // 2, 255, -1)
        for method in METHODS:
            if method == "fsr-best":
                continue  # about 20x slower than the others: time it on purpose, not by default
            spec = JobSpec(kind="inpaint", options={"method": method})
            job = EngineJob("bench", spec, model, 0, image=photo, mask=mask)
            wall, cpu, result = timed(lambda job=job: fill.run(job, JobContext()), 1)
            scale = result.metadata["fill"]["work_scale"]
            print(
                f"fill 2048x1365 disc {side:4d} px {method:8s} {wall:6.2f} s wall "
                f"{cpu:6.2f} s CPU  work scale {scale:.2f}"
            )
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
