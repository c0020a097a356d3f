"""The weight-free fill engine on real photos: pixels outside the feathered mask are untouched,
the fill continues its surroundings, an object on a plain background disappears, bad requests
fail with a clear error."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.engine_jobs import engine_job
from skimage import data

from brushlink.plugin.errors import ImageMismatch, InvalidField, Unsupported
from brushlink.plugin.request import InpaintParams, Request
from brushlink.server.engines.base import EngineResult, JobCancelled, JobContext
from brushlink.server.engines.fill.engine import FillEngine
from brushlink.server.engines.fill.methods import DEFAULT_METHOD, METHODS

ENGINE = FillEngine()
MODEL = ENGINE.models()[0]


def rgba(rgb: np.ndarray) -> np.ndarray:
    return np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])


COFFEE = rgba(data.coffee())  # 600 x 400; dark wood right of the saucer
ROCKET = rgba(data.rocket())  # 640 x 427; an even blue evening sky at the top
CHELSEA = rgba(data.chelsea())


GROW = 6  # px: the tests' mask grow and feather, so what may change is known exactly


def fill(
    image: np.ndarray,
    mask: np.ndarray,
    ctx: JobContext | None = None,
    *,
    grow: int = GROW,
    feather: int = GROW,
    output: str = "composite",
    **options,
) -> EngineResult:
    params = InpaintParams(grow=grow, feather=feather, output=output)
    request = Request(kind="inpaint", model="fill", inpaint=params, options=options)
    job = engine_job(ENGINE, request, image=image, mask=mask)
    result = ENGINE.run(job, ctx or JobContext())
    assert len(result.images) == 1
    out = result.images[0].image
    assert out.shape == image.shape and out.dtype == np.uint8
    return result


def box_mask(shape: tuple[int, ...], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros(shape[:2], np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def beyond(mask: np.ndarray, px: int) -> np.ndarray:
    """Pixels more than ``px`` away from every masked pixel: the feathered mask is 0 there."""
    outside = (mask == 0).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, 5) > px


def ring(mask: np.ndarray, inner: int, outer: int) -> np.ndarray:
    return beyond(mask, inner) & ~beyond(mask, outer)


def test_model_is_an_inpaint_model():
    assert MODEL.name == "fill" and MODEL.engine == "fill" and MODEL.kinds == ["inpaint"]
    assert MODEL.defaults["method"] == DEFAULT_METHOD == "patchmatch-blend"


def test_pixels_outside_the_feathered_mask_are_byte_identical_and_alpha_is_kept():
    image = CHELSEA.copy()
    image[..., 3] = np.linspace(40, 255, image.shape[1], dtype=np.uint8)[None, :]
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.circle(mask, (220, 150), 18, 255, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 3)  # a soft selection edge
    mask[mask < 8] = 0
    out = fill(image, mask).images[0].image
    keep = beyond(mask, GROW + 1)
    assert np.array_equal(out[keep], image[keep])
    assert np.array_equal(out[..., 3], image[..., 3])
    assert (out[mask == 255] != image[mask == 255]).any()


def test_fill_of_a_textured_area_matches_its_surroundings():
    mask = box_mask(COFFEE.shape, 505, 175, 545, 215)  # on the wood
    out = fill(COFFEE, mask).images[0].image
    filled = out[mask > 0][:, :3].astype(float)
    around = COFFEE[ring(mask, GROW + 1, 30)][:, :3].astype(float)
    assert np.abs(filled.mean(axis=0) - around.mean(axis=0)).max() < 15
    # wood grain, not a flat patch (and certainly not zeros)
    assert filled.std(axis=0).mean() > 0.4 * around.std(axis=0).mean()
    assert filled.mean() > 20


@pytest.mark.parametrize("method", [m for m in METHODS if m != "fsr-best"])
def test_an_object_on_a_plain_background_is_gone(method):
    x0, y0, size = 120, 60, 36
    image = ROCKET.copy()
    cv2.circle(image, (x0 + size // 2, y0 + size // 2), size // 2 - 2, (250, 70, 20, 255), -1)
    mask = box_mask(image.shape, x0, y0, x0 + size, y0 + size)
    result = fill(image, mask, method=method)
    out = result.images[0].image
    assert result.metadata["fill"]["method"] == method
    filled = out[mask > 0][:, :3].astype(float)
    sky = ROCKET[ring(mask, GROW + 1, 20)][:, :3].astype(float)
    assert (filled[:, 0] > 150).sum() == 0  # no orange left
    assert np.abs(filled.mean(axis=0) - sky.mean(axis=0)).max() < 12
    keep = beyond(mask, GROW + 1)
    assert np.array_equal(out[keep], image[keep])


def test_empty_mask_returns_the_input_unchanged():
    result = fill(COFFEE, np.zeros(COFFEE.shape[:2], np.uint8))
    assert np.array_equal(result.images[0].image, COFFEE)
    assert result.images[0].image is not COFFEE


def test_mask_over_everything_is_refused_with_a_reason():
    with pytest.raises(InvalidField) as err:
        fill(COFFEE, np.full(COFFEE.shape[:2], 255, np.uint8))
    assert err.value.field == "mask"
    assert "whole image" in err.value.message


def test_separate_spots_are_filled_as_separate_regions():
    mask = box_mask(COFFEE.shape, 20, 320, 40, 340) | box_mask(COFFEE.shape, 540, 40, 560, 60)
    result = fill(COFFEE, mask)
    assert result.metadata["fill"]["regions"] == 2
    out = result.images[0].image
    keep = beyond(mask, GROW + 1)
    assert np.array_equal(out[keep], COFFEE[keep])


def test_a_large_region_of_sky_is_filled_with_sky_and_pasted_back_exactly():
    mask = np.zeros(ROCKET.shape[:2], np.uint8)
    cv2.ellipse(mask, (470, 110), (90, 60), 0, 0, 360, 255, -1)  # a big patch of sky
    result = fill(ROCKET, mask, grow=4, feather=10)
    out = result.images[0].image
    keep = beyond(mask, 5)
    assert np.array_equal(out[keep], ROCKET[keep])
    filled = out[mask > 0][:, :3].astype(float)
    sky = ROCKET[ring(mask, 5, 25)][:, :3].astype(float)
    assert np.abs(filled.mean(axis=0) - sky.mean(axis=0)).max() < 20


def test_layer_output_holds_only_the_fill_with_the_blend_as_alpha():
    mask = box_mask(COFFEE.shape, 505, 175, 545, 215)
    composite = fill(COFFEE, mask).images[0].image
    layer = fill(COFFEE, mask, output="layer").images[0].image
    alpha = layer[..., 3].astype(np.float32) / 255.0
    assert (alpha[beyond(mask, GROW + 1)] == 0).all()
    assert (alpha[mask > 0] == 1.0).all()
    # laid over the original, the layer gives the composite (to rounding)
    over = layer[..., :3] * alpha[..., None] + COFFEE[..., :3] * (1 - alpha[..., None])
    assert np.abs(over - composite[..., :3]).max() <= 2


def test_feather_blends_inside_the_grown_mask():
    mask = box_mask(COFFEE.shape, 505, 175, 545, 215)
    out = fill(COFFEE, mask, grow=8, feather=8, method="telea").images[0].image
    inner = mask > 0
    band = ring(mask, 1, 7)  # in the grown ring, where the ramp blends
    assert (out[inner] != COFFEE[inner]).any()
    # the ramp mixes old and new: the band changes less than the fully replaced middle
    change = np.abs(out[..., :3].astype(int) - COFFEE[..., :3]).sum(axis=2)
    assert change[band].mean() < change[inner].mean()
    assert np.array_equal(out[beyond(mask, 9)], COFFEE[beyond(mask, 9)])


def test_missing_images_and_mismatched_sizes_are_refused_before_queueing():
    request = Request(kind="inpaint", model="fill")
    image, mask = COFFEE, np.zeros(COFFEE.shape[:2], np.uint8)
    with pytest.raises(InvalidField) as err:
        engine_job(ENGINE, request, image=image)
    assert err.value.field == "mask"
    with pytest.raises(InvalidField) as err:
        engine_job(ENGINE, request, mask=mask)
    assert err.value.field == "image"
    with pytest.raises(ImageMismatch) as err:
        engine_job(ENGINE, request, image=image, mask=np.zeros((200, 300), np.uint8))
    assert "300x200" in err.value.message and "600x400" in err.value.message
    with pytest.raises(Unsupported) as err:
        engine_job(ENGINE, request, image=image, mask=mask, reference=image)
    assert err.value.field == "reference"


def test_bad_options_are_refused_before_queueing():
    def check(**options):
        request = Request(kind="inpaint", model="fill", options=options)
        engine_job(ENGINE, request, image=COFFEE, mask=np.zeros(COFFEE.shape[:2], np.uint8))

    with pytest.raises(InvalidField) as err:
        check(method="magic")
    assert err.value.field == "options.method" and "patchmatch" in err.value.message
    with pytest.raises(InvalidField) as err:
        check(grow=3)  # grow is the request's `inpaint.grow`, not an option
    assert err.value.field == "options.grow" and "method" in err.value.message
    with pytest.raises(InvalidField) as err:
        engine_job(
            ENGINE,
            Request(kind="inpaint", model="fill", inpaint=InpaintParams(grow=-3)),
            image=COFFEE,
            mask=np.zeros(COFFEE.shape[:2], np.uint8),
        )
    assert err.value.field == "inpaint.grow"


def test_progress_is_reported_and_cancel_stops_the_job():
    mask = box_mask(COFFEE.shape, 20, 320, 40, 340) | box_mask(COFFEE.shape, 540, 40, 560, 60)
    steps: list[tuple[int, int]] = []
    fill(COFFEE, mask, JobContext(on_progress=lambda s, t: steps.append((s, t))))
    assert steps == [(0, 2), (1, 2), (2, 2)]  # regions known, then one step per region
    with pytest.raises(JobCancelled):
        fill(COFFEE, mask, JobContext(is_cancelled=lambda: True))
