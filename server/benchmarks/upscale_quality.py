"""Side by side: every weight-free upscale in ``engines/upscale/resample.py`` (and, with
``--models DIR``, every ESRGAN-family upscaler found there) on real photos from scikit-image.

    brushlink bench upscale [--save DIR] [--models DIR] [--methods a,b] [--scales 2,4]

Each photo is made 2 or 4 times smaller, upscaled back, and compared with the original. Two
ways of making it smaller, so a method is not tuned to one: ``area`` (OpenCV's box filter,
``INTER_AREA``) and ``pil`` (Pillow's antialiased Lanczos). Scores, means over the photos:

(a) ``PSNR``: dB against the original, RGB. Higher is closer.
(b) ``SSIM``: structural similarity against the original (scikit-image, RGB).
(c) ``sharp``: mean Sobel gradient magnitude of the result's grey image / the same of the
    original. 1.0 is as crisp as the original; an upscale that only interpolates stays well
    below; above 1.0 is sharpening that invents edges.
(d) ``halo``: mean overshoot, in grey levels, of the result beyond the original's local minimum
    and maximum (5 x 5 px): the ringing and halos sharpening adds. Lower is cleaner.
(e) ``ms``: milliseconds per output megapixel (one process; the machine has 2 cores).

The default (``lanczos-bp``) is the method with the best PSNR, averaged over the four cases,
of those sharper than Lanczos in every case; the run ends by saying whether that still holds.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..engines.upscale.resample import DEFAULT_METHOD, METHODS

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera")
DEGRADATIONS = ("area", "pil")
COLUMNS = ("PSNR", "SSIM", "sharp", "halo", "ms")

Upscale = Callable[[np.ndarray, int], np.ndarray]


def photos() -> dict[str, np.ndarray]:
    from skimage import data

    found = {}
    for name in PHOTOS:
        image = getattr(data, name)()
        found[name] = np.dstack([image] * 3) if image.ndim == 2 else image
    return found


def shrink(image: np.ndarray, scale: int, how: str) -> tuple[np.ndarray, np.ndarray]:
    """(the original cropped to a multiple of ``scale``, its ``scale`` times smaller copy)."""
    h, w = image.shape[0] // scale * scale, image.shape[1] // scale * scale
    image = np.ascontiguousarray(image[:h, :w])
    if how == "area":
        return image, cv2.resize(image, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
    from PIL import Image

    small = Image.fromarray(image).resize((w // scale, h // scale), Image.Resampling.LANCZOS)
    return image, np.asarray(small)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)


def sharpness(rgb: np.ndarray) -> float:
    grey = _grey(rgb)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    return float(np.mean(np.hypot(gx, gy)))


def halo(original: np.ndarray, result: np.ndarray) -> float:
    grey, out = _grey(original), _grey(result)
    kernel = np.ones((5, 5), np.uint8)
    high, low = cv2.dilate(grey, kernel), cv2.erode(grey, kernel)
    return float(np.mean(np.maximum(0, out - high) + np.maximum(0, low - out)))


def score(original: np.ndarray, result: np.ndarray, seconds: float) -> dict[str, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    return {
        "PSNR": float(peak_signal_noise_ratio(original, result)),
        "SSIM": float(structural_similarity(original, result, channel_axis=2)),
        "sharp": sharpness(result) / sharpness(original),
        "halo": halo(original, result),
        "ms": 1000 * seconds / (original.shape[0] * original.shape[1] / 1e6),
    }


def network_methods(models: Path) -> dict[str, Upscale]:
    """Each upscaler in ``models``' upscaler folders, run through the engine as a job would."""
    from brushlink.plugin.request import Request, UpscaleParams

    from ..engines.base import EngineJob, JobContext
    from ..engines.upscale.engine import UpscaleEngine

    engine = UpscaleEngine([models], device="cpu")
    cards = {c.name: c for c in engine.models()}

    def runner(name: str) -> Upscale:
        def run(rgb: np.ndarray, scale: int) -> np.ndarray:
            request = Request(kind="upscale", model=name, upscale=UpscaleParams(scale=scale))
            image = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
            job = EngineJob("bench", request, cards[name], 0, image=image)
            out: np.ndarray = engine.run(job, JobContext()).images[0].image[..., :3]
            return out

        return run

    return {u.name: runner(u.name) for u in engine.upscalers()}


def _row(name: str, values: dict[str, float]) -> str:
    return (
        f"{name:16s} {values['PSNR']:6.2f} {values['SSIM']:6.3f} {values['sharp']:6.3f} "
        f"{values['halo']:6.3f} {values['ms']:7.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="upscale_quality", description=__doc__.splitlines()[0])
    parser.add_argument("--save", type=Path, help="write side-by-side crops as PNGs here")
    parser.add_argument("--models", type=Path, help="also measure the upscalers in this folder")
    parser.add_argument("--methods", help="comma-separated subset of: " + ", ".join(METHODS))
    parser.add_argument("--scales", default="2,4", help="factors to measure (default 2,4)")
    args = parser.parse_args([] if argv is None else argv)  # `brushlink bench` passes none
    try:
        images = photos()
    except ImportError:
        print("This benchmark uses scikit-image's sample photos: pip install 'brushlink[dev]'.")
        return 2
    names = args.methods.split(",") if args.methods else list(METHODS)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        print(f"unknown methods: {', '.join(unknown)}")
        return 2
    methods: dict[str, Upscale] = {n: METHODS[n] for n in names}
    if args.models:
        methods.update(network_methods(args.models))
    scales = [int(s) for s in args.scales.split(",")]
    print(f"{len(methods)} methods, {len(images)} photos ({', '.join(images)}), "
          f"default: {DEFAULT_METHOD}")  # fmt: skip
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    means: dict[tuple[str, int], dict[str, dict[str, float]]] = {}
    for how in DEGRADATIONS:
        for scale in scales:
            rows: dict[str, list[dict[str, float]]] = {n: [] for n in methods}
            for photo, image in images.items():
                original, small = shrink(image, scale, how)
                crops = [original]
                for name, method in methods.items():
                    started = time.perf_counter()
                    result = method(small, scale)
                    rows[name].append(score(original, result, time.perf_counter() - started))
                    crops.append(result)
                if args.save:
                    _save(args.save / f"{how}-x{scale}-{photo}.png", crops)
            table = {n: {c: float(np.mean([r[c] for r in rs])) for c in COLUMNS}
                     for n, rs in rows.items()}  # fmt: skip
            means[(how, scale)] = table
            print(f"\nshrunk with {how}, upscaled x{scale} (means over {len(images)} photos)")
            print(
                f"{'method':16s} {'PSNR':>6s} {'SSIM':>6s} {'sharp':>6s} {'halo':>6s} {'ms/MP':>7s}"
            )
            for name, values in table.items():
                print(_row(name, values))
    print(f"\nload average after: {os.getloadavg()[0]:.1f}")
    if {"lanczos", DEFAULT_METHOD} <= set(methods):
        best = _best_sharp(list(means.values()))
        print(f"best PSNR of the methods sharper than lanczos in every case: {best} "
              f"({'the default' if best == DEFAULT_METHOD else 'NOT the default'})")  # fmt: skip
    return 0


def _best_sharp(tables: list[dict[str, dict[str, float]]]) -> str:
    """The weight-free method with the best mean PSNR among those sharper than plain Lanczos
    in every case."""
    sharper = [
        n for n in tables[0]
        if n in METHODS and all(t[n]["sharp"] > t["lanczos"]["sharp"] for t in tables)
    ]  # fmt: skip
    if not sharper:
        return "lanczos"
    return max(sharper, key=lambda n: float(np.mean([t[n]["PSNR"] for t in tables])))


def _save(path: Path, crops: list[np.ndarray]) -> None:
    """The original and each result side by side: a 256 px crop from the middle."""
    h, w = crops[0].shape[:2]
    size = min(256, h, w)
    y, x = (h - size) // 2, (w - size) // 2
    strip = np.hstack([c[y : y + size, x : x + size] for c in crops])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
