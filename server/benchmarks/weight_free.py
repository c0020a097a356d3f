"""The weight-free engines side by side: every fill method scored on real photos and textures
(``fill_quality``: detail, frame, colour, blockiness, time), then every style timed at
2048 x 2048.

    brushlink bench weight-free              # add fill_quality's flags, e.g. --methods a,b

Prints wall and CPU seconds per case and the load average, since wall time on a shared machine
says as much about the neighbours as about the engine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial

import cv2
import numpy as np

from brushlink.plugin.request import Request

from ..engines.base import EngineJob, EngineResult, JobContext
from ..engines.filters.engine import STYLES, FiltersEngine
from . import fill_quality


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


def main(argv: list[str] | None = None) -> int:
    status = fill_quality.main(argv or [])
    if status:
        return status
    print()
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
        spec = Request(kind="style", style=style)
        job = EngineJob(
            "bench", spec, model, 0, image=image, reference=None if style else reference
        )
        wall, cpu, _ = timed(partial(filters.run, job, JobContext()), 2)
        print(
            f"filters 2048x2048 {style or 'colour transfer':16s} {wall:6.2f} s wall {cpu:6.2f} s CPU"
        )

    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
