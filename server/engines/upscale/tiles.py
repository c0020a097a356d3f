"""Overlapping tiles blended without seams, in bounded memory.

A picture is cut into tiles of at most ``tile`` px on a side that overlap by at least
``overlap`` px, spread evenly so every overlap is about the same. Each tile's result (``scale``
times larger) is weighted by a window that is 1 inside and falls along a raised cosine over
``overlap * scale`` px at every side that meets another tile; at the picture's own border it
stays 1. The windows are separable (a row weight times a column weight) and each axis'
weights are normalised to sum to 1, so the blend is a partition of unity: where two tiles agree
the result is exactly their value, and where they differ (a network sees zero padding at a
tile's edge) it moves from one to the other smoothly, with no step.

Tiles run row by row, and the output rows no later tile touches are finished at the end of each
row, so beside the output only one row of tiles is held in float: memory grows with the tile
size and the picture's width, not with its area.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

TileFn = Callable[[np.ndarray], np.ndarray]


def positions(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of the tiles along one axis: the first at 0, the last ending at ``length``, the
    rest evenly between so that neighbours overlap by at least ``overlap``."""
    if length <= tile:
        return [0]
    # one px of slack: rounding the evenly spread starts may shorten an overlap by one
    count = 1 + math.ceil((length - tile) / max(1, tile - overlap - 1))
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def tile_count(width: int, height: int, tile: int, overlap: int) -> int:
    return len(positions(width, tile, overlap)) * len(positions(height, tile, overlap))


def _ramp(length: int) -> np.ndarray:
    """Rising weights over ``length`` px, sampled at pixel centres: a ramp and its mirror
    image sum to 1 (sin² + cos²), and none is 0."""
    t = (np.arange(length, dtype=np.float64) + 0.5) / length
    return np.sin(0.5 * np.pi * t) ** 2


def axis_weights(length: int, starts: list[int], size: int, ramp: int) -> list[np.ndarray]:
    """Each tile's weights along one axis (output px), normalised to sum to 1 everywhere."""
    ramp = min(ramp, size // 2)
    windows = []
    for start in starts:
        window = np.ones(size, np.float64)
        if start > 0 and ramp:
            window[:ramp] = _ramp(ramp)
        if start + size < length and ramp:
            window[size - ramp :] = np.minimum(window[size - ramp :], _ramp(ramp)[::-1])
        windows.append(window)
    total = np.zeros(length, np.float64)
    for start, window in zip(starts, windows, strict=True):
        total[start : start + size] += window
    return [
        (window / total[start : start + size]).astype(np.float32)
        for start, window in zip(starts, windows, strict=True)
    ]


def run_tiled(
    image: np.ndarray,
    fn: TileFn,
    *,
    scale: int,
    tile: int,
    overlap: int,
    on_tile: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """``fn`` applied to overlapping tiles of ``image`` (H x W x C uint8) and blended.

    ``fn`` gets a tile (h x w x C uint8) and returns its result, (h * scale) x (w * scale) x C,
    float or uint8 in 0..255. ``on_tile(done, total)`` is called after each tile (and may raise
    to stop). Returns the (H * scale) x (W * scale) x C uint8 picture.
    """
    height, width, channels = image.shape
    tile_w, tile_h = min(tile, width), min(tile, height)
    xs, ys = positions(width, tile, overlap), positions(height, tile, overlap)
    ramp = overlap * scale
    wx = axis_weights(width * scale, [x * scale for x in xs], tile_w * scale, ramp)
    wy = axis_weights(height * scale, [y * scale for y in ys], tile_h * scale, ramp)
    out = np.empty((height * scale, width * scale, channels), np.uint8)
    band = np.zeros((0, width * scale, channels), np.float32)
    band_top = 0  # the output row band[0] is
    total, done = len(xs) * len(ys), 0
    for row, y in enumerate(ys):
        top, bottom = y * scale, (y + tile_h) * scale
        if band_top + len(band) < bottom:
            grow = bottom - band_top - len(band)
            band = np.concatenate([band, np.zeros((grow, *band.shape[1:]), np.float32)])
        for col, x in enumerate(xs):
            result = fn(image[y : y + tile_h, x : x + tile_w])
            expected = (tile_h * scale, tile_w * scale, channels)
            if result.shape != expected:
                raise ValueError(f"a tile came back {result.shape}, not {expected}")
            weight = wy[row][:, None, None] * wx[col][None, :, None]
            left = x * scale
            band[top - band_top : bottom - band_top, left : left + tile_w * scale] += (
                result.astype(np.float32) * weight
            )
            done += 1
            if on_tile is not None:
                on_tile(done, total)
        finished = ys[row + 1] * scale if row + 1 < len(ys) else height * scale
        rows = finished - band_top
        out[band_top:finished] = np.clip(np.rint(band[:rows]), 0, 255).astype(np.uint8)
        band, band_top = band[rows:], finished
    return out
