"""Weight-free upscaling: the methods ``brushlink bench upscale`` compares, and the default.

Every method takes an H x W x 3 uint8 RGB picture and returns (H * scale) x (W * scale) x 3
uint8. The default, ``lanczos-bp``, won the benchmark on photos (``benchmarks/
upscale_quality.py``): Lanczos, then a few rounds of iterative back-projection, which pull the
result towards the input (its box-filtered downsize is made equal to the input). That restores
detail Lanczos smooths away without inventing any: it is sharper than Lanczos and bicubic and
closer to the original (PSNR, SSIM) than either, or than an unsharp mask, which sharpens about
as much with more halo and less PSNR. An unsharp mask before the
back-projection (``lanczos-usm-bp``) sharpens a little more for a little less PSNR.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

USM_SIGMA = 0.5  # px of the input: the unsharp mask's Gaussian, times the factor
USM_AMOUNT = 0.5
BACK_PROJECTIONS = 4  # 8 change the result by under 0.01 dB on the benchmark's photos

Method = Callable[[np.ndarray, int], np.ndarray]


def resize(image: np.ndarray, width: int, height: int, interpolation: int) -> np.ndarray:
    return cv2.resize(image, (width, height), interpolation=interpolation)


def _up(image: np.ndarray, scale: int, interpolation: int) -> np.ndarray:
    h, w = image.shape[:2]
    return resize(image, w * scale, h * scale, interpolation)


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def unsharp(image: np.ndarray, sigma: float, amount: float) -> np.ndarray:
    """``image + amount * (image - blur(image))`` on float pixels."""
    return image + amount * (image - cv2.GaussianBlur(image, (0, 0), sigma))


def back_project(start: np.ndarray, small: np.ndarray, rounds: int) -> np.ndarray:
    """Iterative back-projection (Irani & Peleg): add the upsized difference between the input
    and the estimate's box-filtered downsize, ``rounds`` times. Float in, float out."""
    h, w = small.shape[:2]
    big_h, big_w = start.shape[:2]
    estimate = start.copy()
    for _ in range(rounds):
        error = small - resize(estimate, w, h, cv2.INTER_AREA)
        estimate += resize(error, big_w, big_h, cv2.INTER_CUBIC)
    return estimate


def bicubic(rgb: np.ndarray, scale: int) -> np.ndarray:
    return _up(rgb, scale, cv2.INTER_CUBIC)


def lanczos(rgb: np.ndarray, scale: int) -> np.ndarray:
    return _up(rgb, scale, cv2.INTER_LANCZOS4)


def lanczos_usm(rgb: np.ndarray, scale: int) -> np.ndarray:
    big = _up(rgb.astype(np.float32), scale, cv2.INTER_LANCZOS4)
    return to_uint8(unsharp(big, USM_SIGMA * scale, USM_AMOUNT))


def lanczos_bp(rgb: np.ndarray, scale: int) -> np.ndarray:
    """The default: Lanczos, back-projected onto the input."""
    small = rgb.astype(np.float32)
    return to_uint8(back_project(_up(small, scale, cv2.INTER_LANCZOS4), small, BACK_PROJECTIONS))


def lanczos_usm_bp(rgb: np.ndarray, scale: int) -> np.ndarray:
    small = rgb.astype(np.float32)
    big = unsharp(_up(small, scale, cv2.INTER_LANCZOS4), USM_SIGMA * scale, USM_AMOUNT)
    return to_uint8(back_project(big, small, BACK_PROJECTIONS))


METHODS: dict[str, Method] = {
    "bicubic": bicubic,
    "lanczos": lanczos,
    "lanczos-usm": lanczos_usm,
    "lanczos-bp": lanczos_bp,
    "lanczos-usm-bp": lanczos_usm_bp,
}
DEFAULT_METHOD = "lanczos-bp"


def upscale_alpha(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    """The alpha channel on its own, with plain Lanczos (no sharpening: edges must not ring)."""
    if (alpha == 255).all():
        return np.full((height, width), 255, np.uint8)
    return to_uint8(resize(alpha.astype(np.float32), width, height, cv2.INTER_LANCZOS4))


def downsize(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Down to an exact size with a box filter (``INTER_AREA``): after a network whose factor
    is larger than the one asked for."""
    if rgb.shape[1] == width and rgb.shape[0] == height:
        return rgb
    return resize(rgb, width, height, cv2.INTER_AREA)
