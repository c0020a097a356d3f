"""Pixels in and out of the pipelines: sizes the models work at, the prefill of empty areas,
and conversions between the pipelines' float images and RGBA."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np


def ceil8(value: int) -> int:
    return max(8, (value + 7) // 8 * 8)


def native_size(width: int, height: int, native: int) -> tuple[int, int]:
    """Scale (width, height) to the model's native pixel count, keeping the aspect; multiples of 8."""
    scale = math.sqrt(native * native / max(1, width * height))
    return ceil8(round(width * scale)), ceil8(round(height * scale))


def prefill(rgba: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """RGB with masked or transparent pixels filled from their surroundings (OpenCV Telea), so
    the VAE sees plausible colours where the canvas was empty (outpainting)."""
    rgb = np.ascontiguousarray(rgba[..., :3])
    holes = ((mask > 0) | (rgba[..., 3] == 0)).astype(np.uint8) * 255
    if not holes.any() or holes.all():
        return rgb if not holes.all() else np.full_like(rgb, 127)
    return cv2.inpaint(rgb, holes, 3, cv2.INPAINT_TELEA)


def reaches_edge(hole: np.ndarray, box: Any, shape: tuple[int, ...]) -> bool:
    """Whether the region to regenerate touches the picture's edge (outpainting)."""
    height, width = shape[:2]
    return bool(
        (box.x == 0 and hole[:, 0].any())
        or (box.y == 0 and hole[0].any())
        or (box.right == width and hole[:, -1].any())
        or (box.bottom == height and hole[-1].any())
    )


def to_rgba(image: np.ndarray) -> np.ndarray:
    rgb = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    return np.concatenate([rgb, alpha], axis=2)


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[1] == width and image.shape[0] == height:
        return image
    shrink = width * height < image.shape[0] * image.shape[1]
    interp = cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    return cv2.resize(image, (width, height), interpolation=interp)
