"""The weight-free style engine on real photos: each style does what its name says, strength
blends, a reference moves the colours, bad requests fail with a clear error."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.engine_jobs import engine_job
from skimage import data

from brushlink.plugin.errors import InvalidField
from brushlink.plugin.request import Request
from brushlink.server.engines.base import JobCancelled, JobContext
from brushlink.server.engines.filters.engine import STYLES, FiltersEngine, _at_size, _detail

ENGINE = FiltersEngine()
MODEL = ENGINE.models()[0]


def rgba(rgb: np.ndarray, scale: float = 0.5) -> np.ndarray:
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    return np.dstack([small, np.full(small.shape[:2], 255, np.uint8)])


ASTRONAUT = rgba(data.astronaut())
COFFEE = rgba(data.coffee())
CHELSEA = rgba(data.chelsea())
ROCKET = rgba(data.rocket())  # a blue evening sky


def run(image: np.ndarray, ctx: JobContext | None = None, **fields) -> np.ndarray:
    reference, mask = fields.pop("reference", None), fields.pop("mask", None)
    request = Request(kind="style", model="filters", **fields)
    job = engine_job(ENGINE, request, image=image, reference=reference, mask=mask)
    result = ENGINE.run(job, ctx or JobContext())
    assert len(result.images) == 1
    out = result.images[0].image
    assert out.shape == image.shape and out.dtype == np.uint8
    return out


def gray(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)


def edge_map(gray_image: np.ndarray) -> np.ndarray:
    g = cv2.GaussianBlur(gray_image.astype(np.float32), (0, 0), 2)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)).ravel()


def fine_detail(rgb: np.ndarray) -> float:
    """Median |Laplacian|: the high-frequency energy of the typical pixel (robust to outlines)."""
    return float(np.median(np.abs(cv2.Laplacian(gray(rgb).astype(np.float32), cv2.CV_32F))))


def mean_lab(rgb: np.ndarray) -> np.ndarray:
    lab = cv2.cvtColor(rgb[..., :3].astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
    return lab.reshape(-1, 3).mean(axis=0)


def test_model_lists_its_styles():
    assert MODEL.name == "filters" and MODEL.kinds == ["style"]
    assert set(MODEL.styles) >= {"sketch", "pencil-color", "watercolor", "oil", "cartoon", "detail"}
    assert MODEL.to_wire()["accepts"]["styles"] == list(STYLES)


@pytest.mark.parametrize("photo", [COFFEE, ASTRONAUT], ids=["coffee", "astronaut"])
def test_sketch_is_grey_pencil_lines_where_the_photo_has_edges(photo):
    out = run(photo, style="sketch")
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    sketch_edges = edge_map(out[..., 0])
    matching = np.corrcoef(edge_map(gray(photo)), sketch_edges)[0, 1]
    unrelated = np.corrcoef(edge_map(gray(photo)[::-1, ::-1]), sketch_edges)[0, 1]
    assert matching > 0.25
    assert matching > unrelated + 0.2


def test_pencil_colour_keeps_colour_and_draws_lines():
    out = run(COFFEE, style="pencil-color")
    assert np.abs(out[..., 0].astype(int) - out[..., 2]).mean() > 10  # not grey
    assert np.corrcoef(edge_map(gray(COFFEE)), edge_map(gray(out)))[0, 1] > 0.25


def test_cartoon_has_few_flat_colours():
    def colours(rgb):
        return len(np.unique(rgb[..., :3].reshape(-1, 3), axis=0))

    out = run(CHELSEA, style="cartoon")
    assert colours(out) <= 16  # 8 palette colours and black ink
    assert colours(CHELSEA) > 1000
    assert (out[..., :3].max(axis=2) == 0).mean() > 0.01  # some ink lines
    # the palette follows the photo: the mean colour stays close
    assert np.abs(mean_lab(out)[1:] - mean_lab(CHELSEA)[1:]).max() < 10


@pytest.mark.parametrize("style", ["watercolor", "oil"])
@pytest.mark.parametrize("photo", [COFFEE, ASTRONAUT], ids=["coffee", "astronaut"])
def test_painterly_styles_are_smoother(style, photo):
    assert fine_detail(run(photo, style=style)) < 0.8 * fine_detail(photo)


def test_detail_adds_high_frequency_energy():
    out = run(CHELSEA, style="detail")
    assert fine_detail(out) > 1.5 * fine_detail(CHELSEA)


def test_detail_above_its_working_size_adds_its_change_to_the_full_size_photo():
    rgb = np.ascontiguousarray(CHELSEA[..., :3])
    out = _at_size(rgb, _detail, 128, True)
    assert out.shape == rgb.shape
    # the photo's own fine texture survives, where scaling up the result would blur it away
    assert fine_detail(out) > fine_detail(rgb)
    assert fine_detail(out) > fine_detail(_at_size(rgb, _detail, 128, False))


def test_strength_zero_returns_the_input_and_half_is_between():
    assert np.array_equal(run(COFFEE, style="oil", strength=0.0), COFFEE)
    full = run(COFFEE, style="oil").astype(int)
    half = run(COFFEE, style="oil", strength=0.5).astype(int)
    expected = (COFFEE.astype(int) + full) / 2
    assert np.abs(half - expected).max() <= 1


def test_alpha_is_kept():
    photo = COFFEE.copy()
    photo[..., 3] = np.linspace(0, 255, photo.shape[1], dtype=np.uint8)[None, :]
    out = run(photo, style="watercolor")
    assert np.array_equal(out[..., 3], photo[..., 3])


def test_reference_moves_the_colours_toward_it():
    out = run(COFFEE, reference=ROCKET)
    before, after, target = mean_lab(COFFEE), mean_lab(out), mean_lab(ROCKET)
    assert after[2] < before[2] - 20  # b*: from warm brown to blue
    assert np.linalg.norm(after - target) < 0.25 * np.linalg.norm(before - target)
    # shapes stay: the recoloured picture still has the photo's edges
    assert np.corrcoef(edge_map(gray(COFFEE)), edge_map(gray(out)))[0, 1] > 0.8


def test_flat_reference_tints_without_erasing_the_picture():
    blue = np.zeros((32, 32, 4), np.uint8)
    blue[..., 2] = 200
    blue[..., 3] = 255
    out = run(COFFEE, reference=blue)
    assert mean_lab(out)[2] < mean_lab(COFFEE)[2] - 20
    assert gray(out).std() > 0.3 * gray(COFFEE).std()


def test_style_and_reference_together_restyle_then_recolour():
    out = run(COFFEE, style="watercolor", reference=ROCKET)
    assert mean_lab(out)[2] < mean_lab(COFFEE)[2] - 20
    assert fine_detail(out) < fine_detail(COFFEE)


def test_unknown_style_names_the_known_ones():
    with pytest.raises(InvalidField) as err:
        run(COFFEE, style="vaporwave")
    assert err.value.field == "style"
    assert "vaporwave" in err.value.message
    for name in STYLES:
        assert name in err.value.message


def test_neither_style_nor_reference_is_refused_before_queueing():
    def check(image=COFFEE, reference=None, **fields):
        engine_job(ENGINE, Request(kind="style", model="filters", **fields), image=image,
                   reference=reference)  # fmt: skip

    with pytest.raises(InvalidField) as err:
        check()
    assert "reference" in err.value.message and err.value.field == "style"
    with pytest.raises(InvalidField) as err:
        check(image=None, style="oil")
    assert err.value.field == "image"
    check(style="oil")
    check(reference=COFFEE[:64, :64])


def test_a_mask_keeps_the_restyle_inside_it_softly():
    mask = np.zeros(COFFEE.shape[:2], np.uint8)
    mask[100:300, 200:400] = 255
    mask[100:300, 180:200] = 128  # a soft edge
    out = run(COFFEE, style="sketch", mask=mask)
    assert np.array_equal(out[mask == 0], COFFEE[mask == 0])
    sketch = run(COFFEE, style="sketch")
    assert np.array_equal(out[mask == 255], sketch[mask == 255])
    half = (COFFEE[mask == 128].astype(int) + sketch[mask == 128]) / 2
    assert np.abs(out[mask == 128] - half).max() <= 1


def test_progress_is_reported_and_cancel_stops_the_job():
    steps: list[tuple[int, int]] = []
    run(COFFEE, JobContext(on_progress=lambda s, t: steps.append((s, t))), style="sketch")
    assert steps[0][0] == 0 and steps[-1][0] == steps[-1][1]
    with pytest.raises(JobCancelled):
        run(COFFEE, JobContext(is_cancelled=lambda: True), style="sketch")


def test_large_photo_is_styled_at_working_size_and_scaled_back():
    big = rgba(data.coffee(), scale=2.0)  # 1200 x 800: above the 1024 working size
    out = run(big, style="sketch")
    assert (out[..., 0] == out[..., 2]).all()
    assert np.corrcoef(edge_map(gray(big)), edge_map(out[..., 0]))[0, 1] > 0.25
