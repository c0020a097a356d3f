"""Laying a baked projection over an object's texture without a hard seam (numpy only).

Two bakes in the object's UV space come in (``projection.py`` makes them):

* the projected colour (H x W x 4), extended past the UV islands' edges by the bake's margin;
* a mask: red the projection's weight (inside the view, facing the camera, not hidden, on a
  selected face), green 1 on selected faces, blue 1 wherever any face covers the texel.

The weight fades in from the selection's edge: a texel's distance to the nearest texel of an
unselected face, in texels, runs through a smoothstep over ``feather`` texels, so where
projected faces meet the rest the new texture blends into the old over that band instead of
stopping at a line. The fade lies inside the selection: unselected faces keep their texels
exactly. Texels no face covers (the gutter between islands) take the largest weight around
them, so texture filtering at an island's edge does not pull the old texture in.
"""

from __future__ import annotations

import numpy as np

GUTTER = 4  # texels the weight is carried into the gutter around each island


def dilate(mask: np.ndarray) -> np.ndarray:
    """A boolean mask grown by one texel (3 x 3)."""
    padded = np.pad(mask, 1, mode="constant")
    out = np.zeros_like(mask)
    h, w = mask.shape
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy : dy + h, dx : dx + w]
    return out


def grow_max(values: np.ndarray) -> np.ndarray:
    """Each texel's largest value in its 3 x 3 neighbourhood."""
    padded = np.pad(values, 1, mode="edge")
    h, w = values.shape
    out = values.copy()
    for dy in range(3):
        for dx in range(3):
            np.maximum(out, padded[dy : dy + h, dx : dx + w], out=out)
    return out


def distance_from(mask: np.ndarray, limit: int) -> np.ndarray:
    """Chessboard distance (texels) to the nearest True texel, capped at ``limit``."""
    distance = np.full(mask.shape, float(limit), np.float32)
    front = mask.copy()
    for step in range(limit):
        distance[front & (distance == limit)] = step
        if front.all():
            break
        front = dilate(front)
    return distance


def fade_in(unselected: np.ndarray, feather: int) -> np.ndarray:
    """0 on unselected texels, rising by a smoothstep to 1 at ``feather`` texels from them."""
    if feather <= 0 or not unselected.any():
        return (~unselected).astype(np.float32)
    t = distance_from(unselected, feather) / feather
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def weight(mask: np.ndarray, feather: int) -> np.ndarray:
    """The blend weight of the projection per texel (H x W in [0, 1])."""
    covered = mask[..., 2] > 0.5
    unselected = covered & (mask[..., 1] < 0.5)
    out = np.clip(mask[..., 0], 0.0, 1.0) * fade_in(unselected, feather)
    out[~covered] = 0.0
    gutter = ~covered
    for _ in range(GUTTER):
        out = np.where(gutter, grow_max(out), out)
    return out.astype(np.float32)


def lay_over(old: np.ndarray, projected: np.ndarray, blend: np.ndarray) -> np.ndarray:
    """``projected`` over ``old`` (H x W x 4) through ``blend``; where the weight is 0 the old
    texel is kept exactly, where it is above 0 the texel becomes opaque."""
    w = blend[..., None]
    out = old * (1.0 - w) + projected * w
    out[..., 3] = np.where(blend > 0, 1.0, old[..., 3])
    keep = blend <= 0
    out[keep] = old[keep]
    return out.astype(np.float32)


def changed_share(blend: np.ndarray, mask: np.ndarray) -> float:
    """How much of the covered texture the projection reached (for the report)."""
    covered = mask[..., 2] > 0.5
    return float((blend[covered] > 0).mean()) if covered.any() else 0.0
