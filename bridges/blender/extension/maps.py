"""PBR maps estimated from a colour texture alone: height, normal, roughness, ambient occlusion.

numpy only (every Blender build ships it; no OpenCV or SciPy there), no ``bpy``: arrays in,
arrays out, top row first. Filters wrap around for a seamless texture (so its maps tile too)
and repeat the edge pixels otherwise.

* luminance    L = 0.2126 R + 0.7152 G + 0.0722 B (Rec. 709 weights on the sRGB values)
* height       L blurred by a 3 x 3 box (takes out pixel noise), stretched to [0, 1]:
               bright = high, the usual reading of a photo texture (lit tops, dark crevices)
* normal       tangent space from the blurred L's central differences,
               n = normalise(-8 dL/dx, -8 dL/dy, 1), stored as n / 2 + 0.5 (OpenGL: green up)
* roughness    0.9 in the darkest pixels to 0.4 in the brightest: 0.9 - 0.5 (L - min) / (max - min)
* occlusion    cavities, where the height is below its surroundings: c = max(0, B(h) - h) with
               B a box blur of radius side / 32 (twice, close to a Gaussian), and
               AO = clip(1 - 2 c, 0.2, 1): flat and raised areas stay 1, deep pits go to 0.2
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NORMAL_SLOPE = 8.0  # luminance steps are small; this scales them into visible slopes
AO_GAIN = 2.0
AO_FLOOR = 0.2


@dataclass
class Maps:
    normal: np.ndarray  # H x W x 4 RGBA in [0, 1]
    roughness: np.ndarray  # H x W in [0.4, 0.9]
    height: np.ndarray  # H x W in [0, 1]
    occlusion: np.ndarray  # H x W in [AO_FLOOR, 1]


def luminance(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., 0] * 0.2126 + rgba[..., 1] * 0.7152 + rgba[..., 2] * 0.0722


def box_blur(values: np.ndarray, radius: int, wrap: bool = True) -> np.ndarray:
    """Mean over a (2 radius + 1)^2 square, by running sums (cost independent of the radius)."""
    if radius <= 0:
        return values.astype(np.float32)
    out = values.astype(np.float64)
    for axis in (0, 1):
        size = out.shape[axis]
        r = min(radius, size - 1) if not wrap else radius
        pad = [(0, 0), (0, 0)]
        pad[axis] = (r + 1, r)
        padded = np.pad(out, pad, mode="wrap" if wrap else "edge")
        sums = np.cumsum(padded, axis=axis)
        upper = np.take(sums, np.arange(2 * r + 1, 2 * r + 1 + size), axis=axis)
        lower = np.take(sums, np.arange(0, size), axis=axis)
        out = (upper - lower) / (2 * r + 1)
    return out.astype(np.float32)


def _stretch(values: np.ndarray) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) / (hi - lo) if hi > lo else np.full_like(values, 0.5)


def _gradient(height: np.ndarray, wrap: bool) -> tuple[np.ndarray, np.ndarray]:
    """Central differences; ``dy`` counts up the image (rows are top first)."""
    padded = np.pad(height, 1, mode="wrap" if wrap else "edge")
    dx = (padded[1:-1, 2:] - padded[1:-1, :-2]) * 0.5
    dy = (padded[:-2, 1:-1] - padded[2:, 1:-1]) * 0.5
    return dx, dy


def derive_maps(rgba: np.ndarray, wrap: bool = True) -> Maps:
    """The four maps of a colour texture (H x W x 4 in [0, 1], top row first)."""
    luma = luminance(rgba).astype(np.float32)
    smooth = box_blur(luma, 1, wrap)
    dx, dy = _gradient(smooth, wrap)
    nx, ny, nz = -dx * NORMAL_SLOPE, -dy * NORMAL_SLOPE, np.ones_like(smooth)
    length = np.sqrt(nx * nx + ny * ny + nz * nz)
    normal = np.stack([nx / length, ny / length, nz / length], axis=2) * 0.5 + 0.5
    normal = np.concatenate([normal, np.ones_like(smooth)[..., None]], axis=2)
    roughness = 0.9 - 0.5 * _stretch(luma)
    height = _stretch(smooth)
    radius = max(2, round(min(height.shape) / 32))
    surroundings = box_blur(box_blur(height, radius, wrap), radius, wrap)
    cavity = np.clip(surroundings - height, 0.0, None)
    occlusion = np.clip(1.0 - AO_GAIN * cavity, AO_FLOOR, 1.0)
    return Maps(
        normal.astype(np.float32),
        roughness.astype(np.float32),
        height.astype(np.float32),
        occlusion.astype(np.float32),
    )


def grey_rgba(values: np.ndarray) -> np.ndarray:
    """An H x W map as opaque grey RGBA."""
    grey = np.clip(values, 0.0, 1.0)[..., None]
    return np.concatenate([grey.repeat(3, axis=2), np.ones_like(grey)], axis=2)
