"""The weight-free preprocessors for ControlNet pictures, on real photos and drawings: each gives
what it names."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from brushlink.server.engines.diffusers.controls import PREPROCESSORS

ASTRONAUT = np.dstack([data.astronaut(), np.full((512, 512), 255, np.uint8)])


def drawing(dark_on_light: bool) -> np.ndarray:
    """A house drawn in 3 px lines, as an artist's line layer would hold it."""
    ground, ink = (245, 20) if dark_on_light else (20, 245)
    canvas = np.full((256, 256), ground, np.uint8)
    cv2.rectangle(canvas, (60, 110), (196, 220), ink, 3)
    cv2.line(canvas, (60, 110), (128, 40), ink, 3)
    cv2.line(canvas, (128, 40), (196, 110), ink, 3)
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGBA)


def lines_of(picture: np.ndarray) -> np.ndarray:
    """Where the house's lines are (the truth, from the drawing itself)."""
    grey = cv2.cvtColor(picture[..., :3], cv2.COLOR_RGB2GRAY)
    return (grey < 128) if grey.mean() > 127 else (grey > 128)


def test_every_preprocessor_gives_a_three_channel_picture_of_the_same_size() -> None:
    for name, run in PREPROCESSORS.items():
        out = run(ASTRONAUT)
        assert out.shape == (512, 512, 3) and out.dtype == np.uint8, name


def test_canny_marks_the_photo_s_edges_and_nothing_else() -> None:
    edges = PREPROCESSORS["canny"](ASTRONAUT)[..., 0]
    assert set(np.unique(edges)) <= {0, 255}
    grey = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY).astype(np.float32)
    gradient = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
    on_edges = gradient[edges > 0].mean()
    assert 0.03 < (edges > 0).mean() < 0.3  # a line drawing, not a blank or a fill
    assert on_edges > 3 * gradient.mean()


@pytest.mark.parametrize("dark_on_light", [True, False], ids=["dark-lines", "light-lines"])
def test_lineart_gives_white_lines_on_black_whichever_way_the_drawing_was_made(
    dark_on_light: bool,
) -> None:
    picture = drawing(dark_on_light)
    out = PREPROCESSORS["lineart"](picture)[..., 0]
    truth = lines_of(picture)
    assert out[truth].mean() > 200 and out[~truth].mean() < 30


def test_scribble_is_binary_and_bolder_than_lineart() -> None:
    picture = drawing(True)
    scribble = PREPROCESSORS["scribble"](picture)[..., 0]
    lineart = PREPROCESSORS["lineart"](picture)[..., 0]
    assert set(np.unique(scribble)) <= {0, 255}
    assert (scribble > 127).sum() > 1.2 * (lineart > 127).sum()
    assert scribble[lines_of(picture)].min() == 255  # every line kept


def test_depth_passes_the_pass_through_as_grey() -> None:
    ramp = np.tile(np.linspace(0, 255, 256, dtype=np.uint8), (128, 1))  # near on the right
    picture = cv2.cvtColor(ramp, cv2.COLOR_GRAY2RGBA)
    out = PREPROCESSORS["depth"](picture)
    assert np.array_equal(out[..., 0], ramp) and np.array_equal(out[..., 2], ramp)


def test_tile_keeps_the_colours_and_blurs_away_the_detail() -> None:
    out = PREPROCESSORS["tile"](ASTRONAUT).astype(np.float32)
    photo = ASTRONAUT[..., :3].astype(np.float32)
    assert np.abs(out.mean(axis=(0, 1)) - photo.mean(axis=(0, 1))).max() < 3
    detail = cv2.Laplacian(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var()
    original = cv2.Laplacian(cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY), cv2.CV_32F).var()
    assert detail < 0.1 * original


def test_none_is_the_picture_itself_and_transparent_parts_are_black() -> None:
    picture = ASTRONAUT.copy()
    picture[:100, :100, 3] = 0
    out = PREPROCESSORS["none"](picture)
    assert np.array_equal(out[100:, 100:], picture[100:, 100:, :3])
    assert (out[:100, :100] == 0).all()
