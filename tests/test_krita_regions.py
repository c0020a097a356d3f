"""The geometry the Krita (and Blender) bridges use to turn a selection into a request box."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brushlink.plugin.regions import Box, context_box, pad_fraction, snap


def test_grow_and_clamp() -> None:
    assert Box(10, 10, 20, 10).grow(2) == Box(8, 8, 24, 14)
    assert Box(-5, 3, 20, 10).clamp(Box(0, 0, 12, 8)) == Box(0, 3, 12, 5)
    assert Box(50, 50, 5, 5).clamp(Box(0, 0, 10, 10)).is_empty


def test_pad_is_a_fraction_of_the_diagonal() -> None:
    # 30x40 box: diagonal 50, 10 % -> 5 px on every side
    assert pad_fraction(Box(100, 100, 30, 40), 0.1) == Box(95, 95, 40, 50)
    with pytest.raises(ValueError):
        pad_fraction(Box(0, 0, 1, 1), -0.1)


def test_snap_grows_around_the_centre_and_slides_onto_the_canvas() -> None:
    canvas = Box(0, 0, 100, 60)
    assert snap(Box(10, 10, 20, 10), 8, canvas) == Box(8, 7, 24, 16)
    # at the right edge the box slides left instead of leaving the canvas
    assert snap(Box(95, 0, 5, 5), 8, canvas) == Box(92, 0, 8, 8)
    # a canvas narrower than the next multiple: the whole axis
    assert snap(Box(0, 0, 99, 8), 8, canvas) == Box(0, 0, 100, 8)


def test_context_box_for_a_selection() -> None:
    canvas = Box(0, 0, 512, 512)
    box = context_box(Box(200, 200, 60, 80), canvas, grow=4, margin=0.1)
    assert box.contains(Box(196, 196, 68, 88))
    assert box.width % 8 == 0 and box.height % 8 == 0
    with pytest.raises(ValueError):
        context_box(Box(0, 0, 0, 5), canvas)


@given(
    cw=st.integers(1, 400),
    ch=st.integers(1, 400),
    data=st.data(),
    grow=st.integers(0, 30),
    margin=st.floats(0, 0.5),
    multiple=st.sampled_from([1, 8, 16, 64]),
)
def test_context_box_properties(cw, ch, data, grow, margin, multiple) -> None:
    canvas = Box(0, 0, cw, ch)
    x = data.draw(st.integers(0, cw - 1))
    y = data.draw(st.integers(0, ch - 1))
    region = Box(x, y, data.draw(st.integers(1, cw - x)), data.draw(st.integers(1, ch - y)))
    box = context_box(region, canvas, grow=grow, margin=margin, multiple=multiple)
    assert canvas.contains(box)
    assert box.contains(region.grow(grow).clamp(canvas))
    assert box.width % multiple == 0 or box.width == cw
    assert box.height % multiple == 0 or box.height == ch
