"""The weight-free fill methods on real photos and textures: the default leaves every pixel
outside the hole exactly as it was, fills a texture with texture (no blur, no frame along the
hole's edge, no colour patch), handles holes on the image's edge, rejects a full mask; and the
measures it is judged by do fail deliberately bad fills.

Thresholds come from ``python -m brushlink.server.benchmarks.fill_quality`` and from these
512 px cases: the default scores detail 0.92-1.0, frame 0.68-0.86, dE under 2.7 on brick, grass
and gravel; a smooth fill (Telea, flat mean colour) scores detail 0.02-0.11; the same textures
brightened by 25 grey levels inside the hole score frame 1.07-2.0 and dE 9.6-11.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from skimage import data

from brushlink.server.benchmarks.fill_quality import (
    blockiness,
    colour_delta,
    detail_ratio,
    frame_ratio,
)
from brushlink.server.engines.fill.methods import DEFAULT_METHOD, METHODS, fill


def rgb(image: np.ndarray) -> np.ndarray:
    return np.dstack([image] * 3) if image.ndim == 2 else image


def square(shape: tuple[int, ...], y: int, x: int, side: int) -> np.ndarray:
    hole = np.zeros(shape[:2], bool)
    hole[y : y + side, x : x + side] = True
    return hole


def painted(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The image with the hole painted white, as a user's selection over an object would be."""
    out = image.copy()
    out[hole] = 255
    return out


BRICK, GRASS, GRAVEL = rgb(data.brick()), rgb(data.grass()), rgb(data.gravel())  # 512 x 512
COFFEE = data.coffee()  # 400 x 600: a silver spoon on a red saucer


def test_default_is_patchmatch_with_seam_blend_when_available() -> None:
    assert DEFAULT_METHOD in METHODS
    if "patchmatch" in METHODS:  # the measured best; without PyPatchMatch a fallback is used
        assert DEFAULT_METHOD == "patchmatch-blend"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_fills_the_hole_and_nothing_else(name: str) -> None:
    image = np.ascontiguousarray(data.chelsea()[80:200, 120:280])
    hole = np.zeros(image.shape[:2], bool)
    cv2.ellipse(hole.view(np.uint8), (80, 60), (16, 12), 0, 0, 360, 1, -1)
    out = METHODS[name](painted(image, hole), hole, seed=1)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~hole], image[~hole])
    # the white paint is gone: the fill comes from the surroundings, not from under the hole
    assert out[hole].mean() < 200


@pytest.mark.parametrize("texture", [BRICK, GRASS], ids=["brick", "grass"])
def test_texture_fill_has_texture_no_frame_no_colour_patch(texture: np.ndarray) -> None:
    hole = square(texture.shape, 200, 200, 96)
    out = fill(painted(texture, hole), hole)
    np.testing.assert_array_equal(out[~hole], texture[~hole])
    assert 0.6 <= detail_ratio(out, hole) <= 1.6  # not a blur (<0.2), not noise
    assert frame_ratio(out, hole) < 0.95  # a 12-grey-level step scores 1.0-1.6 here
    assert colour_delta(out, hole) < 4.0
    assert blockiness(out, hole) < 1.5


def test_hole_along_the_image_edge() -> None:
    hole = np.zeros(GRAVEL.shape[:2], bool)
    hole[-48:, :] = True  # the bottom rows: shift-map leaves such rows unfilled (blue)
    out = fill(painted(GRAVEL, hole), hole)
    np.testing.assert_array_equal(out[~hole], GRAVEL[~hole])
    tint = out[hole].max(axis=1).astype(int) - out[hole].min(axis=1)
    assert tint.max() <= 12  # a grey photo stays grey: no unfilled or tinted pixels
    assert 0.6 <= detail_ratio(out, hole) <= 1.6
    assert frame_ratio(out, hole) < 0.95
    assert colour_delta(out, hole) < 4.0


def test_object_on_a_surface_is_replaced_by_the_surface() -> None:
    hole = np.zeros(COFFEE.shape[:2], bool)
    cv2.ellipse(hole.view(np.uint8), (366, 286), (50, 50), 0, 0, 360, 1, -1)  # the spoon's bowl
    out = fill(COFFEE, hole)
    np.testing.assert_array_equal(out[~hole], COFFEE[~hole])
    # the bowl's highlights (L > 170 in 8-bit Lab) cover 9 % of the hole; the saucer about 0.5 %
    bright_before = cv2.cvtColor(COFFEE, cv2.COLOR_RGB2Lab)[..., 0][hole] > 170
    bright_after = cv2.cvtColor(out, cv2.COLOR_RGB2Lab)[..., 0][hole] > 170
    assert bright_before.mean() > 0.05 and bright_after.mean() < 0.02
    assert colour_delta(out, hole) < 10.0


def test_masks_that_cannot_be_filled_raise_and_an_empty_one_is_a_copy() -> None:
    with pytest.raises(ValueError, match="whole image"):
        fill(GRASS, np.ones(GRASS.shape[:2], bool))
    with pytest.raises(ValueError, match="hole"):
        fill(GRASS, np.zeros((10, 10), bool))
    with pytest.raises(ValueError, match="uint8"):
        fill(GRASS.astype(np.float32), np.zeros(GRASS.shape[:2], bool))
    out = fill(GRASS, np.zeros(GRASS.shape[:2], bool))
    assert out is not GRASS
    np.testing.assert_array_equal(out, GRASS)


def test_the_same_seed_gives_the_same_fill() -> None:
    hole = square(GRASS.shape, 100, 300, 64)
    np.testing.assert_array_equal(fill(GRASS, hole, seed=3), fill(GRASS, hole, seed=3))


def test_the_measures_fail_bad_fills() -> None:
    """The assertions above can fail: a flat colour, a smooth inpainting and a colour offset
    are each outside the bands the default is held to."""
    hole = square(BRICK.shape, 200, 200, 96)
    flat = BRICK.copy()
    flat[hole] = BRICK[hole].mean(axis=0).astype(np.uint8)
    assert detail_ratio(flat, hole) < 0.2
    smooth = METHODS["telea"](BRICK, hole)
    assert detail_ratio(smooth, hole) < 0.3
    offset = BRICK.copy()
    offset[hole] = np.clip(BRICK[hole].astype(int) + 25, 0, 255)
    assert frame_ratio(offset, hole) > 1.3
    assert colour_delta(offset, hole) > 8.0
    # and a good fill of the same hole passes them
    good = fill(BRICK, hole)
    assert detail_ratio(good, hole) > 0.6 and frame_ratio(good, hole) < 0.95


def test_a_megapixel_photo_fills_within_the_time_budget() -> None:
    image = cv2.resize(COFFEE, (1225, 816), interpolation=cv2.INTER_CUBIC)
    hole = np.zeros(image.shape[:2], bool)
    cv2.ellipse(hole.view(np.uint8), (747, 583), (102, 102), 0, 0, 360, 1, -1)
    start = time.perf_counter()
    out = fill(image, hole)
    seconds = time.perf_counter() - start
    np.testing.assert_array_equal(out[~hole], image[~hole])
    assert seconds < 4.0  # about 1 s alone on this 2-core machine; the target is 2 s
